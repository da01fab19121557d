"""Training: VQ-KD tokenizer, BEiT v2 masked image modeling, fine-tuning, linear probing, evaluation.

Only the training entry points import this package (``beitv2-zoo train`` / ``test``,
``python -m beitv2_zoo.train``); ``import beitv2_zoo`` never does. Layout:

* ``config.py``: the typed recipe schemas and ``key=value`` overrides; ``recipes/``: one file per published recipe;
* ``engine.py``: the one training loop; ``distributed.py``: torchrun / DDP; ``checkpointing.py``:
  atomic checkpoints and bit-for-bit resume; ``log.py``: progress bar and JSON lines;
* ``optim.py``: parameter groups (weight decay, layer decay) and EMA; ``schedule.py``: lr schedules;
* ``data.py``: data sets and samplers; ``augment.py``: transforms and Mixup/CutMix;
* ``models.py``: building each task's model and loading weights; ``teachers.py``: VQ-KD teachers;
* ``tasks/``: what differs between the four tasks; ``evaluate.py``: accuracy and ``test``.
"""
