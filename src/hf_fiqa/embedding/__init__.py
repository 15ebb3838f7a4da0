"""Face embeddings at scale: what ``hf-fiqa embed`` does, and the format everything else reads.

* :mod:`.inputs`: which images, under which identity (folder, identity folder, CSV);
* :mod:`.embedder`: batched embeddings of aligned crops with any recognizer and its processor;
* :mod:`.job`: the resumable, sharded run;
* :mod:`.store`: the only writer and reader of ``embeddings.npy`` + ``rows.csv`` / ``embeddings.parquet``.
"""
