"""Classroom tools: the student version of the lessons, and grading of submitted notebooks.

``python -m srgan_edu.classroom release lessons/ --out student/`` and
``python -m srgan_edu.classroom grade submissions/ --out grades.csv``; see
:mod:`~srgan_edu.classroom.notebook` (the exercise markers, nbgrader's), :mod:`.release` and
:mod:`.grade`. The checks themselves live in :mod:`srgan_edu.exercises`.
"""
