"""ov_mapping: open-vocabulary 3D mapping for ROS 2.

Kept deliberately light: every import of a generated ``ov_mapping.msg`` /
``ov_mapping.srv`` module runs this file first.
"""

from pkgutil import extend_path

# The generated ov_mapping.msg / ov_mapping.srv live in the install prefix; when the sources are imported from a
# checkout instead, this lets both halves of the package be found.
__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
