/* Value parsers shared by the config loaders (byte sizes, listen addresses) and the detection
 * of the memory and CPU this process may use once container limits are applied.
 *
 * The cgroup files are read under cfg->cgroup_root and the physical memory from
 * cfg->meminfo_path, so tests run the detection against fake trees. Pure functions; no state.
 * Thread-safe. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "config/config_int.h"
#include "core/buf.h"

/* ---- byte sizes -------------------------------------------------------------------- */

typedef struct {
    const char *unit;
    uint64_t mult;
} unit_t;

/* SI units are powers of 1000, IEC units powers of 1024 (as DuckDB reads memory_limit); a bare
 * letter is the SI unit. Matched case-insensitively. */
static const unit_t units[] = {
    {"", 1},
    {"b", 1},
    {"k", 1000},
    {"kb", 1000},
    {"kib", UINT64_C(1) << 10},
    {"m", 1000000},
    {"mb", 1000000},
    {"mib", UINT64_C(1) << 20},
    {"g", 1000000000},
    {"gb", 1000000000},
    {"gib", UINT64_C(1) << 30},
    {"t", UINT64_C(1000000000000)},
    {"tb", UINT64_C(1000000000000)},
    {"tib", UINT64_C(1) << 40},
};

static bool unit_eq(const char *s, size_t len, const char *unit)
{
    if (strlen(unit) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
        if (c != unit[i]) {
            return false;
        }
    }
    return true;
}

bool dg_parse_bytes(const char *s, uint64_t *out)
{
    if (!s) {
        return false;
    }
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    uint64_t ip = 0;
    size_t n_int = 0;
    for (; *s >= '0' && *s <= '9'; s++, n_int++) {
        unsigned d = (unsigned)(*s - '0');
        if (ip > (UINT64_MAX - d) / 10) {
            return false;
        }
        ip = ip * 10 + d;
    }
    /* The fraction is kept as digits over a power of ten; 18 digits fit in uint64. */
    uint64_t frac = 0, frac_div = 1;
    size_t n_frac = 0;
    bool has_point = false;
    if (*s == '.') {
        has_point = true;
        s++;
        for (; *s >= '0' && *s <= '9'; s++, n_frac++) {
            if (n_frac < 18) {
                frac = frac * 10 + (uint64_t)(*s - '0');
                frac_div *= 10;
            }
        }
    }
    if (n_int == 0 || (has_point && n_frac == 0)) {
        return false;
    }
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t ulen = strlen(s);
    while (ulen && (s[ulen - 1] == ' ' || s[ulen - 1] == '\t')) {
        ulen--;
    }
    const unit_t *u = NULL;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (unit_eq(s, ulen, units[i].unit)) {
            u = &units[i];
            break;
        }
    }
    if (!u) {
        return false;
    }
    if (has_point && u->mult == 1) {
        return false; /* fractions of a byte */
    }
    if (ip > UINT64_MAX / u->mult) {
        return false;
    }
    uint64_t v = ip * u->mult;
    if (frac) {
        /* frac/frac_div < 1, so the product is below mult and fits; long double keeps 64 bits. */
        uint64_t fb = (uint64_t)((long double)frac / (long double)frac_div * (long double)u->mult);
        if (v > UINT64_MAX - fb) {
            return false;
        }
        v += fb;
    }
    *out = v;
    return true;
}

/* ---- listen address ---------------------------------------------------------------- */

bool dg_parse_listen(const char *s, char *out_host, size_t host_cap, int *out_port)
{
    if (!s || host_cap == 0) {
        return false;
    }
    const char *host = s, *host_end, *port;
    if (s[0] == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end || host_end == host || host_end[1] != ':') {
            return false;
        }
        port = host_end + 2;
    } else {
        host_end = strrchr(s, ':');
        if (!host_end || memchr(s, ':', (size_t)(host_end - s))) {
            return false; /* bare IPv6 without brackets is ambiguous */
        }
        port = host_end + 1;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen >= host_cap) {
        return false;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == ':' || c == '%' || c == '_';
        if (!ok || (c == ':' && s[0] != '[')) {
            return false;
        }
    }
    size_t plen = strlen(port);
    if (plen == 0 || plen > 5) {
        return false;
    }
    int p = 0;
    for (size_t i = 0; i < plen; i++) {
        if (port[i] < '0' || port[i] > '9') {
            return false;
        }
        p = p * 10 + (port[i] - '0');
    }
    if (p > 65535) {
        return false;
    }
    memcpy(out_host, host, hlen);
    out_host[hlen] = '\0';
    *out_port = p;
    return true;
}

/* ---- resources --------------------------------------------------------------------- */

/* Reads a small file (first 4 KiB) under dir into buf as a NUL-terminated string. */
static bool read_small(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        return false;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    size_t len = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[len] = '\0';
    return true;
}

static bool parse_u64_prefix(const char **s, uint64_t *out)
{
    const char *p = *s;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p < '0' || *p > '9') {
        return false;
    }
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            v = UINT64_MAX;
        } else {
            v = v * 10 + d;
        }
    }
    *s = p;
    *out = v;
    return true;
}

static uint64_t read_meminfo(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return 0;
    }
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "MemTotal:", 9) == 0) {
            const char *p = line + 9;
            if (!parse_u64_prefix(&p, &kb)) {
                kb = 0;
            }
            break;
        }
    }
    fclose(f);
    return kb > UINT64_MAX / 1024 ? UINT64_MAX : kb * 1024;
}

/* v1 reports "unlimited" as a huge page-aligned number near INT64_MAX. */
#define V1_UNLIMITED (UINT64_C(1) << 60)

/* Memory and CPU limits of one cgroup v2 directory; false when it has neither file. */
static bool cgroup_v2(const char *dir, uint64_t *mem, double *quota)
{
    char buf[256];
    bool found = false;
    if (read_small(dir, "memory.max", buf, sizeof buf)) {
        found = true;
        const char *p = buf;
        uint64_t v;
        if (strncmp(buf, "max", 3) != 0 && parse_u64_prefix(&p, &v)) {
            *mem = v;
        }
    }
    if (read_small(dir, "cpu.max", buf, sizeof buf)) {
        found = true;
        const char *p = buf;
        uint64_t q, per;
        if (strncmp(buf, "max", 3) != 0 && parse_u64_prefix(&p, &q) && parse_u64_prefix(&p, &per) &&
            per > 0) {
            *quota = (double)q / (double)per;
        }
    }
    return found;
}

static bool cgroup_v1(const char *root, uint64_t *mem, double *quota)
{
    char dir[4096], buf[256];
    bool found = false;
    snprintf(dir, sizeof dir, "%s/memory", root);
    if (read_small(dir, "memory.limit_in_bytes", buf, sizeof buf)) {
        found = true;
        const char *p = buf;
        uint64_t v;
        if (parse_u64_prefix(&p, &v) && v < V1_UNLIMITED) {
            *mem = v;
        }
    }
    snprintf(dir, sizeof dir, "%s/cpu", root);
    char qb[64], pb[64];
    if (read_small(dir, "cpu.cfs_quota_us", qb, sizeof qb) &&
        read_small(dir, "cpu.cfs_period_us", pb, sizeof pb)) {
        found = true;
        const char *qp = qb, *pp = pb;
        uint64_t q, per;
        /* A quota of -1 (unlimited) fails the unsigned parse and leaves *quota at 0. */
        if (parse_u64_prefix(&qp, &q) && parse_u64_prefix(&pp, &per) && per > 0) {
            *quota = (double)q / (double)per;
        }
    }
    return found;
}

/* With the real /sys/fs/cgroup outside a container namespace, the limits sit on this
 * process's own cgroup ("0::/path" in /proc/self/cgroup), not on the root. */
static bool own_cgroup_v2_dir(const char *root, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) {
        return false;
    }
    char line[1024];
    bool ok = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::/", 4) == 0) {
            line[strcspn(line, "\n")] = '\0';
            if (line[4] != '\0' && !strstr(line, "..")) {
                int n = snprintf(out, cap, "%s%s", root, line + 3);
                ok = n > 0 && (size_t)n < cap;
            }
            break;
        }
    }
    fclose(f);
    return ok;
}

static int online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    int cpus = n < 1 ? 1 : (int)n;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int a = CPU_COUNT(&set);
        if (a > 0 && a < cpus) {
            cpus = a;
        }
    }
    return cpus;
}

dg_rc_t dg_resources_detect(const dg_config_t *cfg, char **envp, dg_resources_t *out,
                            dg_error_t *err)
{
    memset(out, 0, sizeof *out);
    const char *root = cfg->cgroup_root ? cfg->cgroup_root : "/sys/fs/cgroup";
    const char *meminfo = cfg->meminfo_path ? cfg->meminfo_path : "/proc/meminfo";
    out->physical_bytes = read_meminfo(meminfo);
    out->cpus = online_cpus();

    const char *kind = NULL;
    uint64_t mem = 0;
    double quota = 0;
    if (cgroup_v2(root, &mem, &quota)) {
        kind = "cgroup v2";
    } else if (cgroup_v1(root, &mem, &quota)) {
        kind = "cgroup v1";
    } else {
        char own[4096];
        if (strcmp(root, "/sys/fs/cgroup") == 0 && own_cgroup_v2_dir(root, own, sizeof own) &&
            cgroup_v2(own, &mem, &quota)) {
            kind = "cgroup v2";
        }
    }
    out->cgroup_bytes = mem;
    out->cpu_quota = quota;

    uint64_t base = out->physical_bytes;
    out->memory_source = "physical";
    if (mem > 0 && (base == 0 || mem < base)) {
        base = mem;
        out->memory_source = kind;
    }
    if (base == 0) {
        return dg_error_set(err, DG_CONFIG,
                            "cannot determine memory: no MemTotal in %s and no cgroup limit; "
                            "set memory_limit",
                            meminfo);
    }
    out->budget_bytes = base / 10 * 8;

    const char *env_limit = dg_config__env_get(envp, "DUCKDB_MEMORY_LIMIT");
    if (cfg->memory_limit > 0) {
        out->budget_bytes = cfg->memory_limit;
        out->memory_source = "--memory-limit";
    } else if (env_limit && env_limit[0]) {
        uint64_t v;
        if (!dg_parse_bytes(env_limit, &v) || v == 0) {
            return dg_error_set(err, DG_CONFIG, "DUCKDB_MEMORY_LIMIT: bad byte size \"%.64s\"",
                                env_limit);
        }
        out->budget_bytes = v;
        out->memory_source = "DUCKDB_MEMORY_LIMIT";
    }

    if (cfg->threads > 0) {
        out->threads = cfg->threads;
    } else if (quota > 0) {
        double t = quota > (double)out->cpus ? (double)out->cpus : quota;
        out->threads = (int)t + ((double)(int)t < t ? 1 : 0); /* ceil without libm */
    } else {
        out->threads = out->cpus;
    }
    if (out->threads < 1) {
        out->threads = 1;
    }
    return DG_OK;
}
