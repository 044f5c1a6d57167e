"""The stages, in the order a run goes through them. Each module defines one Stage (stage.py):
what it reads, writes and depends on; the runner (runner.py) runs them and alone imports
them, with the command line."""


def all_stages():
    from . import convert, evaluate, lmdb, train

    return [convert.STAGE, lmdb.STAGE, train.STAGE, evaluate.STAGE]
