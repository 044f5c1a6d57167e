"""The data a run reads and writes: prompt CSVs (prompts.py), which images a run takes
(sampling.py), image conversion (images.py, conversion.py), the conversion report, the
LMDB files (lmdb_io.py), and the synthetic demo data."""
