/* Fuzzes the rate limiter's parsers of untrusted text: the trusted_proxies CIDR list (config)
 * and forwarded-address headers with the trusted-proxy walk (request headers). The first line
 * of the input is the CIDR list, the second the peer address, the rest the header value. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "limit/limit.h"

static const uint8_t *line(const uint8_t **p, const uint8_t *end, size_t *len)
{
    const uint8_t *s = *p;
    const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
    *len = nl ? (size_t)(nl - s) : (size_t)(end - s);
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    size_t list_len, peer_len;
    const char *list = (const char *)line(&p, end, &list_len);
    const char *peer_text = (const char *)line(&p, end, &peer_len);
    const char *fwd = (const char *)p;
    size_t fwd_len = (size_t)(end - p);

    dg_limit_proxies_t proxies;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = dg_limit_proxies_parse(list, list_len, &proxies, &err);
    if (rc != DG_OK && (rc != DG_CONFIG || strncmp(err.msg, "trusted_proxies", 15) != 0)) {
        abort();
    }
    if (rc != DG_OK) {
        /* Fall back to a fixed list so the walk is still exercised. */
        static const char fallback[] = "127.0.0.0/8,10.0.0.0/8,::1,fd00::/8";
        if (dg_limit_proxies_parse(fallback, sizeof fallback - 1, &proxies, NULL) != DG_OK) {
            abort();
        }
    }
    for (size_t i = 0; i < proxies.n; i++) {
        const dg_limit_cidr_t *c = &proxies.cidr[i];
        if ((c->addr.family != 4 && c->addr.family != 6) ||
            c->prefix > (c->addr.family == 4 ? 32u : 128u) || !dg_limit_cidr_match(c, &c->addr)) {
            abort();
        }
    }

    dg_limit_addr_t peer, client;
    if (!dg_limit_addr_parse(peer_text, peer_len, &peer) &&
        !dg_limit_fwd_elem_parse(peer_text, peer_len, &peer)) {
        dg_limit_addr_parse("127.0.0.1", 9, &peer);
    }
    dg_limit_client_addr(&proxies, &peer, fwd, fwd_len, &client);
    if (client.family != 4 && client.family != 6) {
        abort();
    }
    /* The canonical text of an address parses back to the same address. */
    char text[64], key[80];
    dg_limit_addr_format(&client, text, sizeof text);
    dg_limit_addr_t again;
    if (!dg_limit_addr_parse(text, strlen(text), &again) ||
        memcmp(&again, &client, sizeof again) != 0) {
        abort();
    }
    dg_limit_addr_key(&client, key, sizeof key);
    if (strncmp(key, "ip:", 3) != 0) {
        abort();
    }
    /* Every single element of the header through the element parser. */
    dg_limit_addr_t a;
    dg_limit_fwd_elem_parse(fwd, fwd_len, &a);
    dg_limit_cidr_t c;
    dg_limit_cidr_parse(fwd, fwd_len, &c);
    return 0;
}
