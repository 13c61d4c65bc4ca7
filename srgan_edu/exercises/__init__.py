"""Checks for the lessons' exercises: one module per lesson (``lesson01`` ... ``lesson10``).

A lesson's check cell calls one function here with the student's answer, e.g.
``check.pixel_shuffle(pixel_shuffle)``. A check either prints a one-line pass message or raises
:class:`~srgan_edu.exercises.feedback.CheckFailed` whose message says what is wrong and how to
fix it; ``hidden=True`` runs the extra cases that the instructor's hidden tests use. The grading
tool (:mod:`srgan_edu.classroom`) records these messages as the student's feedback.
"""
