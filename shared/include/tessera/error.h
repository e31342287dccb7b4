/*
 * error.h: the one list of error codes that every Tessera function returns.
 *
 * Functions return 0 on success and a negative TSR_E* code on failure;
 * results travel through out-parameters. Errors of LMDB, libarchive, ZeroMQ
 * and OpenImageIO are wrapped into these codes at the module boundary.
 */
#ifndef TESSERA_ERROR_H
#define TESSERA_ERROR_H

#define TSR_OK 0
#define TSR_ENOMEM (-1)    /* out of memory */
#define TSR_EINVAL (-2)    /* invalid argument or value */
#define TSR_EIO (-3)       /* a file or system call failed */
#define TSR_ENOTFOUND (-4) /* no such job, task, blob, file or key */
#define TSR_EPROTO (-5)    /* malformed or unexpected protocol message */
#define TSR_ELIMIT (-6)    /* input past a configured limit */
#define TSR_EARCHIVE (-7)  /* unreadable or refused archive */
#define TSR_EIMAGE (-8)    /* unreadable or refused image */
#define TSR_ESCENE (-9)    /* malformed scene */
#define TSR_EDB (-10)      /* LMDB failure */
#define TSR_EZMQ (-11)     /* ZeroMQ failure */
#define TSR_ETIMEOUT (-12) /* no answer in time */
#define TSR_EEXIST (-13)   /* already exists */
#define TSR_EFRAMES (-14)  /* bad frame set */
#define TSR_EUNSAFE (-15)  /* an archive entry or path that escapes its root */
#define TSR_EHASH (-16)    /* content does not match its hash */
#define TSR_ESTATE (-17)   /* operation not allowed in the current state */
#define TSR_ERENDER (-18)  /* the renderer failed */
#define TSR_EVERSION (-19) /* protocol or record version we do not speak */
#define TSR_EFULL (-20)    /* disk or database full */
#define TSR_EACCESS (-21)  /* key not admitted (authentication) */
#define TSR_EPERM (-22)    /* admitted, but not allowed to do this */
#define TSR_EBUSY (-23)    /* too many requests in flight or too fast; retry later */

/* Returns a static, lower-case description of a TSR_E* code. */
const char *tsr_strerror(int code);

#endif
