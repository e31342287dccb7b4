# make_scene.py: builds the small Cycles scenes of the Blender tests with
# Blender's own Python, so the repository holds this script, not a .blend.
#
#   blender -b --factory-startup -noaudio --python-exit-code 1 \
#       --python tests/data/blender/make_scene.py -- OUT.blend [options]
#
# options:
#   --size WxH          render size (default 64x48)
#   --samples N         Cycles samples per pixel (default 4)
#   --frames N          frames 1..N; a cube slides across them (default 4)
#   --missing-texture   the cube's material reads //textures/missing.png,
#                       which is not there (the missing-asset test)
#
# The scene renders fast and the same everywhere: Cycles on the CPU, a fixed
# seed, no adaptive sampling (its stopping rule looks at neighbouring
# pixels), no denoising (it filters across pixels, so tiles would differ
# from the whole frame at their edges), few samples, a small frame.
import sys

import bpy


def parse(argv):
    args = argv[argv.index("--") + 1:] if "--" in argv else []
    if not args:
        raise SystemExit("usage: ... -- OUT.blend [--size WxH] [--samples N] "
                         "[--frames N] [--missing-texture]")
    opts = {"out": args[0], "size": (64, 48), "samples": 4, "frames": 4,
            "missing": False}
    i = 1
    while i < len(args):
        a = args[i]
        if a == "--size":
            w, h = args[i + 1].lower().split("x")
            opts["size"] = (int(w), int(h))
            i += 2
        elif a == "--samples":
            opts["samples"] = int(args[i + 1])
            i += 2
        elif a == "--frames":
            opts["frames"] = int(args[i + 1])
            i += 2
        elif a == "--missing-texture":
            opts["missing"] = True
            i += 1
        else:
            raise SystemExit("make_scene.py: unknown option " + a)
    return opts


def material(name, color, texture=None):
    m = bpy.data.materials.new(name)
    m.use_nodes = True
    bsdf = m.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Base Color"].default_value = color
    if texture:
        img = bpy.data.images.new(name + "_tex", 4, 4)
        img.source = "FILE"
        img.filepath = texture
        node = m.node_tree.nodes.new("ShaderNodeTexImage")
        node.image = img
        m.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    return m


def build(o):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    sc = bpy.context.scene
    r = sc.render
    r.engine = "CYCLES"
    r.resolution_x, r.resolution_y = o["size"]
    r.resolution_percentage = 100
    sc.cycles.device = "CPU"
    sc.cycles.samples = o["samples"]
    sc.cycles.use_adaptive_sampling = False
    sc.cycles.use_denoising = False
    sc.cycles.seed = 7
    sc.cycles.use_animated_seed = False
    sc.frame_start, sc.frame_end = 1, o["frames"]

    bpy.ops.mesh.primitive_plane_add(size=12)
    bpy.context.active_object.data.materials.append(
        material("ground", (0.6, 0.6, 0.55, 1)))
    bpy.ops.mesh.primitive_cube_add(size=1)
    cube = bpy.context.active_object
    tex = "//textures/missing.png" if o["missing"] else None
    cube.data.materials.append(material("cube", (0.8, 0.2, 0.1, 1), tex))
    cube.location = (-1.5, 0, 0.5)
    cube.keyframe_insert("location", frame=1)
    cube.location = (1.5, 0, 0.5)
    cube.keyframe_insert("location", frame=max(2, o["frames"]))
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.6, location=(0, 1.2, 0.6))
    bpy.context.active_object.data.materials.append(
        material("ball", (0.1, 0.3, 0.8, 1)))

    bpy.ops.object.light_add(type="SUN", location=(2, -2, 5), rotation=(0.6, 0.2, 0.4))
    bpy.context.active_object.data.energy = 3.0
    bpy.ops.object.camera_add(location=(0, -6, 3), rotation=(1.15, 0, 0))
    sc.camera = bpy.context.active_object
    world = bpy.data.worlds.new("sky")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs[1].default_value = 0.6
    sc.world = world
    bpy.context.preferences.filepaths.save_version = 0  # no shot.blend1 beside it
    bpy.ops.wm.save_as_mainfile(filepath=o["out"], relative_remap=False, compress=True)


build(parse(sys.argv))
