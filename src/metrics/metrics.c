/* The metrics registry and its Prometheus text exposition (see metrics.h for the model).
 *
 * Invariants: a family's series table has TABLE_SIZE(cap) = power of two >= 2 * cap slots, so
 * probing always ends at an empty slot; a slot, once published (release store), never changes;
 * series are immutable except their atomic values. Creation is serialised by the registry mutex,
 * so two threads missing the same combination create it once.
 * Threads: lookups and updates lock-free; creation and exposition take the mutex. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/str.h"
#include "metrics/metrics.h"

const double dg_metrics_duration_buckets[15] = {.001, .0025, .005, .01, .025, .05, .1, .25,
                                                .5,   1,     2.5,  5,   10,   30,  60};

#define MAX_COLLECT 8

struct dg_series {
    dg_metric_t *f;
    uint64_t hash;
    char *values[DG_METRICS_MAX_LABELS];
    _Atomic uint64_t u;        /* counter total (integer adds) */
    _Atomic uint64_t bits;     /* double: set value (counter/gauge) or histogram sum */
    atomic_bool is_set;        /* counter/gauge: value came from dg_series_set */
    _Atomic uint64_t *buckets; /* histogram: n_bounds + 1 non-cumulative counts */
};

struct dg_metric {
    dg_metrics_t *reg;
    dg_metric_type_t type;
    char *name;
    char *help;
    size_t n_labels;
    char *labels[DG_METRICS_MAX_LABELS];
    double bounds[DG_METRICS_MAX_BUCKETS];
    size_t n_bounds;
    size_t cap;
    size_t table_size;
    _Atomic(dg_series_t *) *table;
    dg_series_t **order; /* creation order, cap entries */
    _Atomic size_t n;
    dg_series_t *other;
    atomic_bool other_used;
    dg_metric_t *next;
};

struct dg_metrics {
    pthread_mutex_t mu;
    dg_metric_t *head, *tail;
    struct {
        dg_metrics_collect_fn fn;
        void *ctx;
    } collect[MAX_COLLECT];
    size_t n_collect;
};

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static char *xstrdup(const char *s)
{
    return dg_str_dup(dg_str_c(s ? s : ""));
}

dg_metrics_t *dg_metrics_new(void)
{
    dg_metrics_t *m = calloc(1, sizeof *m);
    if (m) {
        pthread_mutex_init(&m->mu, NULL);
    }
    return m;
}

static void series_free(dg_series_t *s)
{
    if (!s) {
        return;
    }
    for (size_t i = 0; i < DG_METRICS_MAX_LABELS; i++) {
        free(s->values[i]);
    }
    free(s->buckets);
    free(s);
}

static void family_free(dg_metric_t *f)
{
    size_t n = atomic_load(&f->n);
    for (size_t i = 0; i < n; i++) {
        series_free(f->order[i]);
    }
    series_free(f->other);
    free(f->order);
    free(f->table);
    for (size_t i = 0; i < f->n_labels; i++) {
        free(f->labels[i]);
    }
    free(f->name);
    free(f->help);
    free(f);
}

void dg_metrics_free(dg_metrics_t *m)
{
    if (!m) {
        return;
    }
    dg_metric_t *f = m->head;
    while (f) {
        dg_metric_t *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* FNV-1a over the label values, each terminated by a 0xff separator. */
static uint64_t hash_values(size_t n, const char *const *values)
{
    uint64_t h = UINT64_C(1469598103934665603);
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)(values[i] ? values[i] : ""); *p;
             p++) {
            h = (h ^ *p) * UINT64_C(1099511628211);
        }
        h = (h ^ 0xffu) * UINT64_C(1099511628211);
    }
    return h;
}

static bool same_values(const dg_series_t *s, size_t n, const char *const *values)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s->values[i], values[i] ? values[i] : "") != 0) {
            return false;
        }
    }
    return true;
}

static dg_series_t *series_new(dg_metric_t *f, const char *const *values, uint64_t hash)
{
    dg_series_t *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->f = f;
    s->hash = hash;
    bool ok = true;
    for (size_t i = 0; i < f->n_labels; i++) {
        s->values[i] = xstrdup(values[i]);
        ok = ok && s->values[i];
    }
    if (f->type == DG_METRIC_HISTOGRAM) {
        s->buckets = calloc(f->n_bounds + 1, sizeof *s->buckets);
        ok = ok && s->buckets;
    }
    if (!ok) {
        series_free(s);
        return NULL;
    }
    atomic_init(&s->u, 0);
    atomic_init(&s->bits, d2u(0.0));
    atomic_init(&s->is_set, false);
    for (size_t i = 0; f->type == DG_METRIC_HISTOGRAM && i <= f->n_bounds; i++) {
        atomic_init(&s->buckets[i], 0);
    }
    return s;
}

static bool valid_name(const char *s)
{
    if (!s || !*s || (*s >= '0' && *s <= '9')) {
        return false;
    }
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == ':')) {
            return false;
        }
    }
    return true;
}

dg_metric_t *dg_metrics_add(dg_metrics_t *m, dg_metric_type_t type, const char *name,
                            const char *help, size_t n_labels, const char *const *label_names,
                            const double *bounds, size_t n_bounds, size_t max_series)
{
    if (!m || !valid_name(name) || n_labels > DG_METRICS_MAX_LABELS || max_series == 0 ||
        max_series > 100000 || (type == DG_METRIC_HISTOGRAM && (n_bounds == 0 || !bounds)) ||
        n_bounds > DG_METRICS_MAX_BUCKETS) {
        return NULL;
    }
    for (size_t i = 1; i < n_bounds; i++) {
        if (!(bounds[i] > bounds[i - 1])) {
            return NULL;
        }
    }
    for (dg_metric_t *g = m->head; g; g = g->next) {
        if (strcmp(g->name, name) == 0) {
            return NULL;
        }
    }
    dg_metric_t *f = calloc(1, sizeof *f);
    if (!f) {
        return NULL;
    }
    f->reg = m;
    f->type = type;
    f->n_labels = n_labels;
    f->n_bounds = type == DG_METRIC_HISTOGRAM ? n_bounds : 0;
    if (f->n_bounds) {
        memcpy(f->bounds, bounds, n_bounds * sizeof *bounds);
    }
    f->cap = max_series;
    f->table_size = 4;
    while (f->table_size < 2 * max_series) {
        f->table_size *= 2;
    }
    f->name = xstrdup(name);
    f->help = xstrdup(help);
    f->table = calloc(f->table_size, sizeof *f->table);
    f->order = calloc(max_series, sizeof *f->order);
    atomic_init(&f->n, 0);
    atomic_init(&f->other_used, false);
    bool ok = f->name && f->help && f->table && f->order;
    for (size_t i = 0; i < n_labels; i++) {
        f->labels[i] = ok && valid_name(label_names[i]) ? xstrdup(label_names[i]) : NULL;
        ok = ok && f->labels[i];
    }
    if (ok) {
        for (size_t i = 0; i < f->table_size; i++) {
            atomic_init(&f->table[i], NULL);
        }
        const char *other[DG_METRICS_MAX_LABELS] = {DG_METRICS_OTHER, DG_METRICS_OTHER,
                                                    DG_METRICS_OTHER, DG_METRICS_OTHER};
        f->other = series_new(f, other, 0);
        ok = f->other != NULL;
    }
    if (!ok) {
        family_free(f);
        return NULL;
    }
    if (m->tail) {
        m->tail->next = f;
    } else {
        m->head = f;
    }
    m->tail = f;
    return f;
}

/* Probes for values; returns the slot index holding it or the first empty one. */
static size_t probe(dg_metric_t *f, uint64_t h, const char *const *values, dg_series_t **out)
{
    size_t mask = f->table_size - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        dg_series_t *s = atomic_load_explicit(&f->table[i], memory_order_acquire);
        if (!s || (s->hash == h && same_values(s, f->n_labels, values))) {
            *out = s;
            return i;
        }
    }
}

dg_series_t *dg_metric_series(dg_metric_t *f, const char *const *values)
{
    if (f->n_labels == 0) {
        values = NULL;
    }
    uint64_t h = hash_values(f->n_labels, values);
    dg_series_t *s;
    probe(f, h, values, &s);
    if (s) {
        return s;
    }
    pthread_mutex_lock(&f->reg->mu);
    size_t i = probe(f, h, values, &s); /* another thread may have created it */
    if (!s) {
        size_t n = atomic_load(&f->n);
        if (n < f->cap && (s = series_new(f, values, h)) != NULL) {
            f->order[n] = s;
            atomic_store_explicit(&f->n, n + 1, memory_order_release);
            atomic_store_explicit(&f->table[i], s, memory_order_release);
        }
    }
    pthread_mutex_unlock(&f->reg->mu);
    return s ? s : dg_metric_other(f);
}

dg_series_t *dg_metric_only(dg_metric_t *f)
{
    return dg_metric_series(f, NULL);
}

dg_series_t *dg_metric_other(dg_metric_t *f)
{
    if (!atomic_load_explicit(&f->other_used, memory_order_relaxed)) {
        atomic_store(&f->other_used, true);
    }
    return f->other;
}

size_t dg_metric_n_series(const dg_metric_t *f)
{
    return atomic_load(&f->n);
}

void dg_series_add(dg_series_t *s, uint64_t n)
{
    atomic_fetch_add_explicit(&s->u, n, memory_order_relaxed);
}

void dg_series_set(dg_series_t *s, double v)
{
    atomic_store_explicit(&s->bits, d2u(v), memory_order_relaxed);
    if (!atomic_load_explicit(&s->is_set, memory_order_relaxed)) {
        atomic_store(&s->is_set, true);
    }
}

void dg_series_observe(dg_series_t *s, double v)
{
    const dg_metric_t *f = s->f;
    size_t i = 0;
    while (i < f->n_bounds && !(v <= f->bounds[i])) {
        i++;
    }
    atomic_fetch_add_explicit(&s->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&s->bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->bits, &old, d2u(u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    atomic_fetch_add_explicit(&s->u, 1, memory_order_relaxed);
}

double dg_series_value(const dg_series_t *s)
{
    dg_series_t *w = (dg_series_t *)(uintptr_t)s;
    double v = (double)atomic_load(&w->u);
    if (atomic_load(&w->is_set)) {
        v += u2d(atomic_load(&w->bits));
    }
    return v;
}

uint64_t dg_series_count(const dg_series_t *s)
{
    dg_series_t *w = (dg_series_t *)(uintptr_t)s;
    return atomic_load(&w->u);
}

double dg_series_sum(const dg_series_t *s)
{
    dg_series_t *w = (dg_series_t *)(uintptr_t)s;
    return u2d(atomic_load(&w->bits));
}

uint64_t dg_series_bucket(const dg_series_t *s, size_t i)
{
    dg_series_t *w = (dg_series_t *)(uintptr_t)s;
    return w->buckets && i <= w->f->n_bounds ? atomic_load(&w->buckets[i]) : 0;
}

dg_rc_t dg_metrics_on_collect(dg_metrics_t *m, dg_metrics_collect_fn fn, void *ctx)
{
    if (!fn || m->n_collect >= MAX_COLLECT) {
        return DG_INTERNAL;
    }
    m->collect[m->n_collect].fn = fn;
    m->collect[m->n_collect].ctx = ctx;
    m->n_collect++;
    return DG_OK;
}

/* ---- exposition ---------------------------------------------------------------------- */

dg_rc_t dg_metrics_escape_label(dg_buf_t *out, const char *s)
{
    dg_rc_t rc = DG_OK;
    for (const char *p = s; rc == DG_OK && *p; p++) {
        switch (*p) {
        case '\\':
            rc = dg_buf_puts(out, "\\\\");
            break;
        case '"':
            rc = dg_buf_puts(out, "\\\"");
            break;
        case '\n':
            rc = dg_buf_puts(out, "\\n");
            break;
        default:
            rc = dg_buf_putc(out, *p);
            break;
        }
    }
    return rc;
}

/* HELP text escapes only backslash and newline. */
static dg_rc_t escape_help(dg_buf_t *out, const char *s)
{
    dg_rc_t rc = DG_OK;
    for (const char *p = s; rc == DG_OK && *p; p++) {
        rc = *p == '\\'   ? dg_buf_puts(out, "\\\\")
             : *p == '\n' ? dg_buf_puts(out, "\\n")
                          : dg_buf_putc(out, *p);
    }
    return rc;
}

/* Formats v as the exposition spells numbers. */
static void fmt_double(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
    } else if (isinf(v)) {
        snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(out, cap, "%lld", (long long)v);
    } else {
        snprintf(out, cap, "%.15g", v);
        if (strtod(out, NULL) != v) {
            snprintf(out, cap, "%.17g", v);
        }
    }
}

dg_rc_t dg_metrics_format_value(dg_buf_t *out, double v)
{
    char tmp[40];
    fmt_double(tmp, sizeof tmp, v);
    return dg_buf_puts(out, tmp);
}

/* name{l1="v1",...[,le="x"]} with extra = the le value (NULL = none). */
static dg_rc_t put_series_name(dg_buf_t *out, const dg_metric_t *f, const dg_series_t *s,
                               const char *suffix, const char *le)
{
    dg_rc_t rc = dg_buf_puts(out, f->name);
    if (rc == DG_OK && suffix) {
        rc = dg_buf_puts(out, suffix);
    }
    if (f->n_labels == 0 && !le) {
        return rc;
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(out, '{');
    }
    for (size_t i = 0; rc == DG_OK && i < f->n_labels; i++) {
        rc = dg_buf_printf(out, "%s%s=\"", i ? "," : "", f->labels[i]);
        if (rc == DG_OK) {
            rc = dg_metrics_escape_label(out, s->values[i]);
        }
        if (rc == DG_OK) {
            rc = dg_buf_putc(out, '"');
        }
    }
    if (rc == DG_OK && le) {
        rc = dg_buf_printf(out, "%sle=\"%s\"", f->n_labels ? "," : "", le);
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(out, '}');
    }
    return rc;
}

static dg_rc_t put_sample(dg_buf_t *out, const dg_metric_t *f, const dg_series_t *s,
                          const char *suffix, const char *le, double v)
{
    dg_rc_t rc = put_series_name(out, f, s, suffix, le);
    if (rc == DG_OK) {
        rc = dg_buf_putc(out, ' ');
    }
    if (rc == DG_OK) {
        rc = dg_metrics_format_value(out, v);
    }
    if (rc == DG_OK) {
        rc = dg_buf_putc(out, '\n');
    }
    return rc;
}

static dg_rc_t put_series(dg_buf_t *out, const dg_metric_t *f, const dg_series_t *s)
{
    if (f->type != DG_METRIC_HISTOGRAM) {
        return put_sample(out, f, s, NULL, NULL, dg_series_value(s));
    }
    /* Read the buckets first and derive the count from them, so _count equals the +Inf
     * bucket even while observations race with the scrape. */
    uint64_t cum = 0;
    dg_rc_t rc = DG_OK;
    for (size_t i = 0; rc == DG_OK && i <= f->n_bounds; i++) {
        cum += dg_series_bucket(s, i);
        char le[40];
        fmt_double(le, sizeof le, i == f->n_bounds ? INFINITY : f->bounds[i]);
        rc = put_sample(out, f, s, "_bucket", le, (double)cum);
    }
    if (rc == DG_OK) {
        rc = put_sample(out, f, s, "_sum", NULL, dg_series_sum(s));
    }
    if (rc == DG_OK) {
        rc = put_sample(out, f, s, "_count", NULL, (double)cum);
    }
    return rc;
}

static const char *type_name(dg_metric_type_t t)
{
    return t == DG_METRIC_COUNTER ? "counter" : t == DG_METRIC_GAUGE ? "gauge" : "histogram";
}

dg_rc_t dg_metrics_expose(dg_metrics_t *m, dg_buf_t *out)
{
    static pthread_mutex_t expose_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&expose_mu);
    for (size_t i = 0; i < m->n_collect; i++) {
        m->collect[i].fn(m, m->collect[i].ctx);
    }
    dg_rc_t rc = DG_OK;
    for (const dg_metric_t *f = m->head; rc == DG_OK && f; f = f->next) {
        rc = dg_buf_printf(out, "# HELP %s ", f->name);
        if (rc == DG_OK) {
            rc = escape_help(out, f->help);
        }
        if (rc == DG_OK) {
            rc = dg_buf_printf(out, "\n# TYPE %s %s\n", f->name, type_name(f->type));
        }
        size_t n = atomic_load_explicit(&f->n, memory_order_acquire);
        for (size_t i = 0; rc == DG_OK && i < n; i++) {
            rc = put_series(out, f, f->order[i]);
        }
        if (rc == DG_OK && atomic_load(&f->other_used)) {
            rc = put_series(out, f, f->other);
        }
    }
    pthread_mutex_unlock(&expose_mu);
    return rc;
}
