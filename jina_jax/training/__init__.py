"""Training, by what each part does:

objectives.py     what a step minimises (contrastive, MLM) on the one batch schema
step.py           the jitted train step and GradCache
loop.py           one stage: sharded init or resume, AOT compile, checkpoints, metrics, faults
checkpointing.py  the stage's orbax checkpoints and fingerprint check (TrainCheckpointer)
tasks.py          stage kinds (mlm, pairs, triplets): objective, batches, fingerprint
optim.py          AdamW + schedules;   metrics.py  metric writer, device peak FLOP/s
"""
