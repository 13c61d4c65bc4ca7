"""Test-wide setup: turn on the lessons' fast mode before any kernel starts.

nbval starts each notebook's kernel as a child of this process, so the variable set here reaches
the lessons; they read it through `srgan_edu.course.fast_mode()`.
"""

import os

os.environ.setdefault("SRGAN_EDU_FAST", "1")
