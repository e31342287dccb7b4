# make_shot.py: builds examples/blender's scene with Blender's own Python:
# a ball rolling past two pillars on a checkered floor under a sun, 48
# frames at 320x180, Cycles with 16 samples. The .blend is not kept in the
# repository; this script is the scene's source.
#
#   blender -b --factory-startup --python-exit-code 1 \
#       --python examples/blender/make_shot.py -- shot/shot.blend
#   tessera submit shot --renderer blender --scene shot.blend --size 320x180 \
#       --frames 1-48 --chunk 4 --tiles 2x2 --wait
#
# Denoising and adaptive sampling are off so that tiles assemble into the
# frame a whole render gives (doc/renderers.md, "Tiles and the whole frame").
import math
import os
import sys

import bpy


def principled(name, color, roughness=0.5, metallic=0.0):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    bsdf = m.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = color
    bsdf.inputs["Roughness"].default_value = roughness
    bsdf.inputs["Metallic"].default_value = metallic
    return m


def checker(name):
    m = principled(name, (1, 1, 1, 1), roughness=0.8)
    nodes, links = m.node_tree.nodes, m.node_tree.links
    tex = nodes.new("ShaderNodeTexChecker")
    tex.inputs["Scale"].default_value = 8.0
    tex.inputs["Color1"].default_value = (0.8, 0.8, 0.75, 1)
    tex.inputs["Color2"].default_value = (0.15, 0.15, 0.2, 1)
    links.new(tex.outputs["Color"], nodes["Principled BSDF"].inputs["Base Color"])
    return m


def main(out):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    sc.render.engine = "CYCLES"
    sc.render.resolution_x, sc.render.resolution_y = 320, 180
    sc.render.resolution_percentage = 100
    sc.cycles.samples = 16
    sc.cycles.use_adaptive_sampling = False
    sc.cycles.use_denoising = False
    sc.cycles.seed = 1
    sc.frame_start, sc.frame_end = 1, 48

    bpy.ops.mesh.primitive_plane_add(size=20)
    bpy.context.active_object.data.materials.append(checker("floor"))
    for x in (-1.6, 1.6):
        bpy.ops.mesh.primitive_cylinder_add(radius=0.35, depth=2.4, location=(x, 1.5, 1.2))
        bpy.context.active_object.data.materials.append(
            principled("pillar", (0.85, 0.8, 0.7, 1), roughness=0.3))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(-3, 0, 0.5), segments=48,
                                         ring_count=24)
    ball = bpy.context.active_object
    bpy.ops.object.shade_smooth()
    ball.data.materials.append(principled("ball", (0.9, 0.25, 0.1, 1), roughness=0.15,
                                          metallic=0.6))
    for frame, x in ((1, -3.0), (48, 3.0)):
        ball.location.x = x
        ball.rotation_euler.y = x / 0.5  # rolls without slipping
        ball.keyframe_insert("location", frame=frame)
        ball.keyframe_insert("rotation_euler", frame=frame)

    bpy.ops.object.light_add(type="SUN", rotation=(math.radians(50), 0, math.radians(30)))
    bpy.context.active_object.data.energy = 4.0
    bpy.ops.object.camera_add(location=(0, -9, 3.5), rotation=(math.radians(75), 0, 0))
    sc.camera = bpy.context.active_object
    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    bg = world.node_tree.nodes["Background"]
    bg.inputs["Color"].default_value = (0.5, 0.65, 0.9, 1)
    bg.inputs["Strength"].default_value = 0.8
    sc.world = world
    bpy.context.preferences.filepaths.save_version = 0  # no shot.blend1 beside it
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=out, compress=True)


args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
if len(args) != 1:
    raise SystemExit("usage: blender -b --factory-startup --python make_shot.py -- OUT.blend")
main(args[0])
