"""Start ov_mapping on a robot: ``ros2 launch ov_mapping robot.launch.py [params_file:=...] [input:=PATH]``.

The node graph (executables, names, remappings) comes from ``ov_mapping.ros.graph``, the same definition that
``ov-mapping launch`` uses, with the same parameters file (``config/ov_mapping.yaml``). With ``input:=PATH`` (a recorded
folder, a rosbag2, or ``synthetic``) a player publishes that sequence as the camera topics.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ov_mapping.ros import graph


def _nodes(context):
    params_file = LaunchConfiguration("params_file").perform(context)
    source = LaunchConfiguration("input").perform(context)
    specs = list(graph.PIPELINE) + ([graph.PLAYER] if source else [])
    actions = []
    for spec in specs:
        parameters = [params_file]
        if spec is graph.PLAYER:
            parameters.append({"input": source})
        actions.append(Node(package=graph.PACKAGE, executable=spec.executable, name=spec.name,
                            namespace=graph.NAMESPACE, parameters=parameters, remappings=list(spec.remappings),
                            output="screen", emulate_tty=True))
    return actions


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=str(graph.default_params_file()),
                              description="ov_mapping parameters file"),
        DeclareLaunchArgument("input", default_value="",
                              description="play this sequence as the camera (folder, rosbag2 or 'synthetic'); "
                                          "empty: use a live camera"),
        OpaqueFunction(function=_nodes),
    ])
