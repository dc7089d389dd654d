"""The knowledge base: the SQLite store of articles, passages and vectors, importing files,
syncing Genesys Knowledge, and the embedders.
"""
