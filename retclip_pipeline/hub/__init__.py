"""Data on the Hugging Face Hub or in a local folder: the token, the splits, their parquet
shards fetched with resumable, retried downloads."""
