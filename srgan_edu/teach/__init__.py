"""Helpers the SRGAN lessons use: widget callbacks and small experiments, one module per lesson.

They live in the library, not in the notebooks, so that tests reach them: ``conv`` (lesson 03),
``blocks`` (04), ``upsampling`` (05), ``quality`` (06).
"""
