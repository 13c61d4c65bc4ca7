"""Helpers the SRGAN lessons use: widget callbacks, pictures and experiments, one module per lesson.

They live in the library, not in the notebooks, so that tests reach them: ``conv`` (lesson 03),
``blocks`` (04), ``upsampling`` (05), ``quality`` (06), ``pieces`` (07), ``training`` (08),
``evaluation`` and ``mos`` (09), ``esrgan`` (10).
"""
