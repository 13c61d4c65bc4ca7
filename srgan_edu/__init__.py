"""srgan-edu: the SRGAN part of the course (Ledig et al., CVPR 2017), lessons 03-10.

The data path reads like the paper, one module per step:
``degrade`` (HR -> LR) -> ``models`` (generator, discriminator) -> ``losses`` (content +
1e-3 adversarial) -> ``metrics`` (PSNR / SSIM). Importing the package is cheap: submodules
are imported where they are used, and nothing touches CUDA at import time.
"""

__version__ = "0.1.0"
