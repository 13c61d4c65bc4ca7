"""toy_gan: the one-dimensional GAN part of the course (lessons 01-02).

``gan`` trains a GAN that turns U(0, 1) noise into N(0, 1) samples; ``sampling`` holds the
classical samplers it is compared with; ``ks`` the Kolmogorov-Smirnov helpers; ``anomaly`` the
detector behind ``python -m toy_gan.anomaly``; ``plots`` the figures.
"""

from srgan_edu import __version__

__all__ = ["__version__"]
