/*
 * hello.c: a minimal vigil plugin in C, proving the ABI is language-neutral.
 *
 *   cc -shared -fPIC -I plugins/api -o libhello.so plugins/examples/hello.c
 *   vigild plugin run ./libhello.so --root /
 *
 * Emits one item per entry of a fixed list, each carrying the node root it was given, and
 * one note. A real plugin would read files under the root (and only under the root).
 */
#include <stdio.h>
#include <string.h>

#include "vigil_plugin.h"

/* Appends `s` (len bytes) to out as a JSON string body; returns the new length or -1. */
static int json_escape(char *out, size_t cap, size_t at, const uint8_t *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = s[i];
        char esc[8];
        size_t n;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20) {
            n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", c);
        } else {
            esc[0] = (char)c;
            n = 1;
        }
        if (at + n >= cap) {
            return -1;
        }
        memcpy(out + at, esc, n);
        at += n;
    }
    return (int)at;
}

static int32_t hello_scan(const vigil_scan_request *req, const vigil_sink *sink) {
    static const char *const greetings[] = {"hello", "bonjour", "hallo"};
    char buf[8192];
    for (size_t i = 0; i < sizeof greetings / sizeof greetings[0]; i++) {
        int at = snprintf(buf, sizeof buf,
                          "{\"key\":\"%s\",\"attributes\":{\"index\":%zu,\"language\":\"c\",\"root\":\"",
                          greetings[i], i);
        at = json_escape(buf, sizeof buf, (size_t)at, req->root, req->root_len);
        if (at < 0 || (size_t)at + 3 >= sizeof buf) {
            static const char msg[] = "hello: node root too long";
            sink->emit(sink->ctx, VIGIL_RECORD_ERROR, (const uint8_t *)msg, sizeof msg - 1);
            return VIGIL_SCAN_FAILED;
        }
        memcpy(buf + at, "\"}}", 3);
        if (sink->emit(sink->ctx, VIGIL_RECORD_ITEM, (const uint8_t *)buf, (size_t)at + 3) != 0) {
            return VIGIL_SCAN_FAILED; /* the host asked us to stop */
        }
    }
    static const char note[] = "hello: greetings only, nothing was read";
    sink->emit(sink->ctx, VIGIL_RECORD_NOTE, (const uint8_t *)note, sizeof note - 1);
    return VIGIL_SCAN_OK;
}

static const vigil_descriptor descriptor = {
    .abi_version = VIGIL_ABI_VERSION,
    .struct_size = sizeof(vigil_descriptor),
    .name = "hello-c",
    .version = "1.0.0",
    .volatile_attributes = NULL,
    .scan = hello_scan,
};

const vigil_descriptor *vigil_plugin_v1(void) { return &descriptor; }
