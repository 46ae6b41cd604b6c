"""The pure-Python ov_mapping library, pip-installable for development (``pip install -e .``).

The ROS package (messages, services, node executables) is built by CMake (see CMakeLists.txt and
scripts/setup_env.sh); this file only makes the library and the ``ov-mapping`` command importable elsewhere.
"""

from setuptools import find_packages, setup

setup(
    name="ov_mapping",
    version="0.1.0",
    description="Real-time open-vocabulary 3D semantic mapping for ROS 2",
    packages=find_packages(include=["ov_mapping", "ov_mapping.*"]),
    package_data={"ov_mapping": ["models/clip3r/*.json"]},
    python_requires=">=3.10",
    install_requires=["numpy>=1.26", "torch>=2.4", "open3d>=0.18", "pillow>=10", "tqdm>=4.60", "safetensors>=0.4"],
    extras_require={
        "models": ["open_clip_torch>=2.24", "segment-anything>=1.0", "timm>=1.0"],
        "export": ["onnx>=1.16", "onnxruntime>=1.18"],
        "bags": ["rosbags>=0.10"],
        "test": ["pytest>=8"],
    },
    entry_points={"console_scripts": ["ov-mapping=ov_mapping.tools.cli:main"]},
)
