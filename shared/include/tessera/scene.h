/*
 * scene.h: the built-in renderer's scene format (JSON), parsed with cJSON.
 * doc/scene-format.md describes it.
 *
 * The master reads only the resolution (to split frames into tiles); the
 * renderer reads everything (through tessera/scene_model.h). A malformed
 * scene is refused with a message that gives line, column and the path of
 * the value ("scene.json:12:5: objects[3].radius: expected a number").
 */
#ifndef TESSERA_SCENE_H
#define TESSERA_SCENE_H

#include <stddef.h>

struct tsr_scene; /* opaque here; tessera/scene_model.h defines it */

/*
 * Parses a scene from text (len bytes, need not be NUL-terminated). name is
 * used in error messages only. *out is owned by the caller; free it with
 * tsr_scene_destroy. Returns 0, TSR_ESCENE (reason in err), TSR_ELIMIT
 * (too many objects, too large a resolution), TSR_ENOMEM.
 */
int tsr_scene_parse(const char *text, size_t len, const char *name,
                    struct tsr_scene **out, char *err, size_t errlen);

/* Reads and parses a scene file. Returns the codes of tsr_scene_parse and
 * TSR_ENOTFOUND, TSR_EIO. */
int tsr_scene_load(const char *path, struct tsr_scene **out, char *err,
                   size_t errlen);

/* Null-safe; sets *scene to NULL. */
void tsr_scene_destroy(struct tsr_scene **scene);

/* The frame size in pixels. */
void tsr_scene_resolution(const struct tsr_scene *scene, int *width, int *height);

#endif
