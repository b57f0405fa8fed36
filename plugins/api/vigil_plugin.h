/*
 * vigil_plugin.h: the vigil scanner-plugin ABI, version 1, for plugins written in C.
 *
 * Mirrors the Rust crate `vigil-plugin` (plugins/api/src/lib.rs) exactly; that crate is the
 * reference. A plugin is a shared library exporting one function, `vigil_plugin_v1`, that
 * returns a pointer to a static descriptor. The host calls `scan` once per process, with the
 * node root and the plugin's config (a JSON object), and the plugin streams records back
 * through `sink->emit`. See plugins/README.md.
 */
#ifndef VIGIL_PLUGIN_H
#define VIGIL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI version this header describes. The host refuses any other. */
#define VIGIL_ABI_VERSION 1u

/* Name of the exported entry symbol. */
#define VIGIL_PLUGIN_SYMBOL "vigil_plugin_v1"

/* Record kinds passed to emit(). All records are UTF-8. */
#define VIGIL_RECORD_ITEM 1u  /* an item, JSON: {"key": "...", "attributes": {...}, "content": "..."} */
#define VIGIL_RECORD_NOTE 2u  /* a coverage note: something the scan could not see */
#define VIGIL_RECORD_ERROR 3u /* the scan's failure message, sent before scan() returns non-zero */
/* a subtree the scan could not see, JSON: {"key": "...", "reason": "..."}: the item `key` and
 * every item whose key starts with `key` "/" (all of them for key "/"); missing from this
 * scan means "not seen", not "removed" */
#define VIGIL_RECORD_UNSEEN 4u

/* scan() return values. */
#define VIGIL_SCAN_OK 0
#define VIGIL_SCAN_FAILED 1
#define VIGIL_SCAN_PANICKED 2 /* only set by the Rust export macro */

/* Largest record the host accepts (4 MiB); a bigger one fails the scan. */
#define VIGIL_MAX_RECORD ((size_t)4 << 20)

/*
 * Hands one record to the host. Returns 0 to continue; any other value means the host wants
 * the scan to stop (return promptly). The host copies `data` before returning.
 *
 * NOT thread-safe: call it only from the thread that called scan(), or serialize the calls
 * yourself (one at a time, e.g. under a mutex), and never after scan() has returned. Two
 * concurrent calls interleave their bytes on the host's pipe and fail the scan.
 */
typedef int32_t (*vigil_emit_fn)(void *ctx, uint32_t kind, const uint8_t *data, size_t len);

/* What the host passes to scan(). Valid only during the call. */
typedef struct vigil_scan_request {
    const uint8_t *root;   /* node root, raw path bytes, NOT NUL-terminated */
    size_t root_len;
    const uint8_t *config; /* the plugin's config table as a JSON object (UTF-8), not NUL-terminated */
    size_t config_len;
} vigil_scan_request;

/* Where records go. Valid only during the scan() call. */
typedef struct vigil_sink {
    void *ctx;
    vigil_emit_fn emit;
} vigil_sink;

typedef int32_t (*vigil_scan_fn)(const vigil_scan_request *request, const vigil_sink *sink);

/* The descriptor a plugin exports. Hosts read only the first struct_size bytes. */
typedef struct vigil_descriptor {
    uint32_t abi_version;            /* VIGIL_ABI_VERSION */
    uint32_t struct_size;            /* sizeof(vigil_descriptor) */
    const char *name;                /* NUL-terminated UTF-8, static */
    const char *version;             /* NUL-terminated UTF-8, static */
    const char *volatile_attributes; /* comma-separated attribute names, or NULL */
    vigil_scan_fn scan;
} vigil_descriptor;

/* The entry symbol every plugin defines. */
const vigil_descriptor *vigil_plugin_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_PLUGIN_H */
