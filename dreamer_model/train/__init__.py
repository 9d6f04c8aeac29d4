"""The trainers: one loop (trainer.py) that the tokenizer, phase 1, 2 and 3 subclass, run logging, distributed
setup, sample images."""
