"""Data: readers, cleaning filters, samplers and the offline starter corpus.

records.py       PairRecord / NegationRecord / STSRecord
readers.py       files, folders, hub names, BEIR -> records, with a ReadReport of skipped lines
filters.py       ExactDedup, NearDedup, LanguageFilter, ConsistencyFilter, CrossEncoderFilter
hashing.py       normalize_text, stable_fraction, stable_sample: choices made by hashing text
tfds_builder.py  records <-> TFDS array_record datasets (no TensorFlow), grain loader
sampler.py       DatasetSpec, MixtureSampler: one dataset per batch, random access by step
pipeline.py      PairBatches, MLMBatches: tokenised, bucket-padded numpy batches by step
prepared.py      prepared datasets (pre-tokenised array_record shards): format, reader, writer
prepare/         python -m jina_jax.data.prepare: raw files -> prepared dataset (Apache Beam)
beam_transforms.py  the Beam transforms of prepare: reading, the filters, order and shards
starter/         the offline starter corpus (python -m jina_jax.data.starter) and sources/
"""
