/* error.c: descriptions of the TSR_E* codes of error.h. */
#include "tessera/error.h"

const char *tsr_strerror(int code)
{
    switch (code) {
    case TSR_OK: return "success";
    case TSR_ENOMEM: return "out of memory";
    case TSR_EINVAL: return "invalid argument";
    case TSR_EIO: return "input/output error";
    case TSR_ENOTFOUND: return "not found";
    case TSR_EPROTO: return "protocol error";
    case TSR_ELIMIT: return "limit exceeded";
    case TSR_EARCHIVE: return "bad archive";
    case TSR_EIMAGE: return "bad image";
    case TSR_ESCENE: return "bad scene";
    case TSR_EDB: return "database error";
    case TSR_EZMQ: return "messaging error";
    case TSR_ETIMEOUT: return "timed out";
    case TSR_EEXIST: return "already exists";
    case TSR_EFRAMES: return "bad frame set";
    case TSR_EUNSAFE: return "unsafe path";
    case TSR_EHASH: return "hash mismatch";
    case TSR_ESTATE: return "not allowed in this state";
    case TSR_ERENDER: return "render failed";
    case TSR_EVERSION: return "unsupported version";
    case TSR_EFULL: return "no space left";
    case TSR_EACCESS: return "access denied";
    case TSR_EPERM: return "not permitted";
    case TSR_EBUSY: return "too many requests";
    default: return "unknown error";
    }
}
