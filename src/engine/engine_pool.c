/* The engine pool (engine/engine.h): the front's side of the engine processes. It spawns and
 * supervises `engines` processes of `slots` slots each, admits requests to slots through a
 * bounded FIFO queue, relays frames with deadlines, and kills an engine whose query ran past
 * its deadline plus the kill grace.
 *
 * Memory split: the DuckDB budget (res->budget_bytes) is divided evenly among the engine
 * processes, and each DuckDB instance (one per database) of an engine gets that whole share as
 * its memory_limit: usually one database is hot, and the engine's RLIMIT_AS bounds the process
 * as a whole (see as_limit_auto).
 *
 * Threads: every exported function may run on any HTTP thread. One mutex (mu) guards the
 * engines, the free lists, the queue and the counters; one condvar (cv, CLOCK_MONOTONIC)
 * signals handed-off slots and returned leases. A leased slot's I/O fields are confined to its
 * holder and touched without the lock. The supervisor thread forks every engine (initial and
 * restarts) because PR_SET_PDEATHSIG fires when the *thread* that forked dies, and the
 * supervisor lives exactly as long as the pool.
 *
 * Invariants:
 * - A slot belongs to one engine generation (gen). When that process dies, its free slots are
 *   freed at once and its leased slots are marked orphaned; a holder sees EOF
 *   (DG_ENGINE_FAILED) and the slot is discarded at release. New slots arrive with the restarted
 *   engine, never before its init answered ok.
 * - Only the supervisor reaps engines, and it clears eng->pid under mu when it does, so a kill()
 *   under mu with a non-zero pid always targets our (possibly zombie) child, never a reused pid. */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/dgtime.h"
#include "core/log.h"
#include "engine/engine_int.h"

#define MOD "engine"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define STABLE_MS 30000       /* an engine up this long resets the backoff */
#define INIT_TIMEOUT_MS 60000 /* opening databases read-only is lazy; this is generous */
#define TERM_WAIT_MS 1000     /* SIGTERM -> SIGKILL at stop */
#define SUPERVISE_TICK_MS 100
#define RETRY_AFTER_S 1
/* How often a queued request checks whether its client is still there. */
#define QUEUE_POLL_MS 200

#if defined(__SANITIZE_ADDRESS__)
#define DG_ENGINE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DG_ENGINE_ASAN 1
#endif
#endif

struct dg_slot {
    dg_engines_t *pool;
    int eng;      /* index of the engine */
    uint64_t gen; /* generation of the engine process the slot talks to */
    int fd;       /* the front's end of the socketpair */
    /* Guarded by pool->mu. */
    bool leased;
    bool orphaned; /* its engine process is gone: discard at release */
    dg_slot_t *next_free;
    /* Confined to the holder. */
    bool in_request; /* REQ sent, END/ERROR not yet read */
    bool cancel_sent;
    bool broken; /* EOF, timeout kill or protocol error: never reuse */
    bool watch_client;
    int64_t kill_at_ms; /* < 0: no deadline */
};

typedef struct eng {
    int idx;
    pid_t pid;  /* 0 when not running (reaped) */
    int ctl_fd; /* -1 when not running */
    uint64_t gen;
    bool up;        /* init answered ok and its slots are in the pool */
    bool ctl_hup;   /* ctl hung up; waiting to reap */
    bool kill_sent; /* we SIGKILLed it (deadline or protocol error) */
    char kill_why[64];
    dg_slot_t **slots; /* this generation's slots (NULL once discarded) */
    dg_slot_t *free_list;
    int n_free;
    int64_t up_since_ms;
    int64_t backoff_ms;
    int64_t restart_at_ms; /* when down: earliest next spawn */
    bool ever_up;
} eng_t;

typedef struct waiter {
    struct waiter *next;
    int want;          /* engine index it may take a slot of; -1 = any */
    dg_slot_t *slot;   /* set by dispatch() when a slot is handed off */
    pthread_cond_t cv; /* signalled for this waiter alone: a hand-off wakes one thread, not
                          every queued request (a broadcast woke them all per release) */
} waiter_t;

/* A freshly spawned engine before its init answer. */
typedef struct spawn {
    pid_t pid;
    int ctl_fd;
    int *slot_fds; /* front ends; slots_per entries */
} spawn_t;

struct dg_engines {
    const dg_config_t *cfg;
    const dg_resources_t *res;
    char *self_exe;
    int n_eng, slots_per;
    eng_t *eng;
    dg_dbfile_t *files;
    size_t n_files;
    uint64_t mem_per_instance;
    uint64_t as_limit; /* 0 = none */

    pthread_mutex_t mu;
    pthread_cond_t cv;
    waiter_t *q_head, *q_tail;
    int q_len;
    int leased;
    bool draining, stopping;
    uint64_t restarts, kills;

    pthread_t sup;
    int wake_fd;    /* eventfd: wakes the supervisor */
    bool init_done; /* the supervisor finished the initial spawn */
    dg_rc_t init_rc;
    char init_msg[512];
};

/* ---- helpers ------------------------------------------------------------------------------ */

static void wake_supervisor(dg_engines_t *p)
{
    uint64_t one = 1;
    ssize_t n = write(p->wake_fd, &one, sizeof one);
    (void)n;
}

static void abs_deadline(struct timespec *ts, int64_t ms_from_now)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms_from_now / 1000);
    ts->tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void slot_free(dg_slot_t *s)
{
    if (s) {
        close(s->fd);
        free(s);
    }
}

/* Address-space cap of an engine (RLIMIT_AS). It exists to stop allocations DuckDB does not
 * count against memory_limit (repeat('x', 2e9), huge IN lists) from pushing the machine into
 * the OOM killer, which might pick the front. DuckDB reserves far more virtual memory than it
 * touches (thread stacks, a glibc arena per allocating thread, the mapped library), so the cap
 * is the engine's DuckDB share plus an allowance measured on this build: with memory_limit
 * 2 GiB, an idle engine had VmSize 160 MB (2 slots) to 435 MB (8 slots, 4 threads); busy
 * engines (hash aggregates, sorts, list aggregation; spilling) peaked at VmPeak 1.75 GB
 * (2 slots/1 thread), 3.4 GB (4/2) and 4.7 GB (8/4), i.e. up to ~2.7 GB above memory_limit.
 * The allowance below gives 7.9 GiB for the 8/4 case: headroom for bursts, still bounded.
 * Every instance of the engine gets the whole share as memory_limit (see the file header); a
 * second hot database in the same engine competes for it rather than doubling the cap. */
static uint64_t as_limit_auto(uint64_t mem_share, size_t n_dbs, int slots, int threads)
{
    const uint64_t mib = (uint64_t)1 << 20;
    uint64_t n = n_dbs ? (uint64_t)n_dbs : 1;
    uint64_t nthreads = (uint64_t)slots + 2 + (uint64_t)(threads > 0 ? threads : 1) * n;
    return mem_share + 4096 * mib + nthreads * 136 * mib + (n - 1) * 512 * mib;
}

/* ---- free lists and admission (all under mu) ---------------------------------------------- */

/* Takes a free slot of engine `want` (-1: of the engine with the most free slots). */
static dg_slot_t *take_best(dg_engines_t *p, int want)
{
    eng_t *best = NULL;
    for (int i = 0; i < p->n_eng; i++) {
        eng_t *e = &p->eng[i];
        if (want >= 0 && i != want) {
            continue;
        }
        if (e->up && !e->kill_sent && e->n_free > 0 && (!best || e->n_free > best->n_free)) {
            best = e;
        }
    }
    if (!best) {
        return NULL;
    }
    dg_slot_t *s = best->free_list;
    best->free_list = s->next_free;
    best->n_free--;
    s->next_free = NULL;
    s->leased = true;
    p->leased++;
    return s;
}

/* Hands free slots to queued waiters in FIFO order. A waiter bound to an engine without a free
 * slot is skipped, not waited for: it must not hold up later waiters that can take a slot of
 * another engine (it keeps its place for the next slot of its own engine). Afterwards no queued
 * waiter can use any free slot, which is what lets acquire() serve a newcomer from the free
 * lists without overtaking anyone. */
static void dispatch(dg_engines_t *p)
{
    waiter_t *prev = NULL;
    waiter_t *w = p->q_head;
    while (w) {
        waiter_t *next = w->next;
        dg_slot_t *s = take_best(p, w->want);
        if (!s) {
            if (w->want < 0) {
                break; /* no free slot at all: nobody behind can be served either */
            }
            prev = w;
            w = next;
            continue;
        }
        if (prev) {
            prev->next = next;
        } else {
            p->q_head = next;
        }
        if (p->q_tail == w) {
            p->q_tail = prev;
        }
        p->q_len--;
        w->next = NULL;
        w->slot = s;
        pthread_cond_signal(&w->cv);
        w = next;
    }
}

/* Wakes every queued waiter and every thread waiting on the pool's cv (a drain, an engine that
 * came up): each looks at the state again. Under mu. */
static void wake_all(dg_engines_t *p)
{
    for (waiter_t *w = p->q_head; w; w = w->next) {
        pthread_cond_signal(&w->cv);
    }
    pthread_cond_broadcast(&p->cv);
}

static void queue_remove(dg_engines_t *p, waiter_t *w)
{
    waiter_t **pp = &p->q_head;
    waiter_t *prev = NULL;
    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = w->next;
        if (p->q_tail == w) {
            p->q_tail = prev;
        }
        p->q_len--;
    }
}

/* Forgets the slots of a dead engine generation. Under mu. */
static void orphan_slots(dg_engines_t *p, eng_t *e)
{
    for (int k = 0; k < p->slots_per; k++) {
        dg_slot_t *s = e->slots[k];
        if (!s) {
            continue;
        }
        if (s->leased) {
            s->orphaned = true; /* the holder discards it at release */
        } else {
            slot_free(s);
        }
        e->slots[k] = NULL;
    }
    e->free_list = NULL;
    e->n_free = 0;
    e->up = false;
}

/* ---- spawning (supervisor thread, without mu) ---------------------------------------------- */

static bool each_listed(const char *list, bool (*fn)(const char *name, size_t len, void *ctx),
                        void *ctx);

static bool append_name(const char *name, size_t len, void *ctx)
{
    json_array_append_new(ctx, json_stringn(name, len));
    return false;
}

/* A comma-separated setting as a JSON array of its (trimmed, non-empty) items. */
static json_t *list_json(const char *list)
{
    json_t *a = json_array();
    if (a) {
        each_listed(list, append_name, a);
    }
    return a;
}

static char *init_json(dg_engines_t *p, int idx)
{
    const dg_config_t *cfg = p->cfg;
    json_t *o = json_object();
    json_t *dbs = json_array();
    char tmp[4200]; /* room for state_buf plus the suffix */
    const char *state = cfg->state_dir;
    char state_buf[4096];
    if (!state || !*state) {
        snprintf(state_buf, sizeof state_buf, "%s/.duckgate", cfg->data_dir ? cfg->data_dir : ".");
        state = state_buf;
    }
    snprintf(tmp, sizeof tmp, "%s/tmp/engine-%d", state, idx);
    for (size_t i = 0; i < p->n_files; i++) {
        /* A read-write database is opened by its owning engine only: one file must never be
         * open read-write in one process and read-only (or read-write) in another. */
        bool rw = dg_engines_is_read_write(cfg, p->files[i].name);
        if (rw && idx != DG_ENGINES_RW_OWNER) {
            continue;
        }
        json_t *d = json_object();
        json_object_set_new(d, "name", json_string(p->files[i].name));
        json_object_set_new(d, "path", json_string(p->files[i].path));
        if (rw) {
            json_object_set_new(d, "read_write", json_true());
        }
        json_array_append_new(dbs, d);
    }
    json_object_set_new(o, "index", json_integer(idx));
    json_object_set_new(o, "databases", dbs);
    json_object_set_new(o, "import_dirs", list_json(cfg->import_dirs));
    json_object_set_new(o, "memory_limit", json_integer((json_int_t)p->mem_per_instance));
    json_object_set_new(o, "threads",
                        json_integer(p->res && p->res->threads > 0 ? p->res->threads : 1));
    json_object_set_new(o, "temp_dir", json_string(tmp));
    json_object_set_new(o, "max_temp_bytes", json_integer(0));
    if (cfg->log_level) {
        json_object_set_new(o, "log_level", json_string(cfg->log_level));
    }
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void close_range_from(int first)
{
#ifdef SYS_close_range
    if (syscall(SYS_close_range, (unsigned)first, ~0U, 0) == 0) {
        return;
    }
#endif
    for (int fd = first; fd < 65536; fd++) {
        close(fd);
    }
}

/* Forks and execs one engine with its sockets on the agreed descriptor numbers, and sends the
 * init JSON. Between fork and exec only async-signal-safe calls run (this process has threads).
 */
static dg_rc_t spawn_engine(dg_engines_t *p, int idx, spawn_t *sp, dg_error_t *err)
{
    int n = p->slots_per;
    int n_child = 1 + n;
    int *child = calloc((size_t)n_child, sizeof *child);
    sp->slot_fds = calloc((size_t)n, sizeof *sp->slot_fds);
    sp->pid = 0;
    sp->ctl_fd = -1;
    char *init = init_json(p, idx);
    dg_rc_t rc = DG_OK;
    int made = 0;

    for (int k = 0; k < n_child; k++) {
        child[k] = -1;
    }
    for (int k = 0; k < n; k++) {
        sp->slot_fds[k] = -1;
    }
    if (!child || !sp->slot_fds || !init) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory spawning an engine");
        goto out;
    }
    for (made = 0; made < n_child; made++) {
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
            rc = dg_error_set(err, DG_IO, "socketpair: %s", strerror(errno));
            goto out;
        }
        if (made == 0) {
            sp->ctl_fd = sv[0];
        } else {
            sp->slot_fds[made - 1] = sv[0];
        }
        child[made] = sv[1];
    }

    /* Everything the child needs is prepared before fork: it may not allocate. */
    char a_ctl[16], a_fd0[16], a_slots[16], a_idx[16];
    snprintf(a_ctl, sizeof a_ctl, "%d", DG_ENGINE__CTL_FD);
    snprintf(a_fd0, sizeof a_fd0, "%d", DG_ENGINE__SLOT_FD0);
    snprintf(a_slots, sizeof a_slots, "%d", n);
    snprintf(a_idx, sizeof a_idx, "%d", idx);
    /* argv[0] is only a title for ps; the CLI dispatches on argv[1]. */
    char *argv[] = {(char *)"duckgate",
                    (char *)"engine",
                    (char *)"--ctl-fd",
                    a_ctl,
                    (char *)"--slot-fd0",
                    a_fd0,
                    (char *)"--slots",
                    a_slots,
                    (char *)"--index",
                    a_idx,
                    NULL};
    int high = DG_ENGINE__CTL_FD + n_child; /* first number above every target */
    struct rlimit as = {(rlim_t)p->as_limit, (rlim_t)p->as_limit};
    pid_t parent = getpid();
    sigset_t all, old;
    sigfillset(&all);
    /* No handler of the front may run in the child before exec. */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++) {
            if (sig != SIGKILL && sig != SIGSTOP) {
                sigaction(sig, &dfl, NULL);
            }
        }
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127); /* the front died before PDEATHSIG was armed */
        }
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        if (p->as_limit) {
            setrlimit(RLIMIT_AS, &as);
        }
        /* Move every child end above the target range first, so no dup2 clobbers a source. */
        for (int k = 0; k < n_child; k++) {
            int t = fcntl(child[k], F_DUPFD_CLOEXEC, high);
            if (t < 0) {
                _exit(127);
            }
            child[k] = t;
        }
        for (int k = 0; k < n_child; k++) {
            if (dup2(child[k], DG_ENGINE__CTL_FD + k) < 0) {
                _exit(127);
            }
        }
        close_range_from(high);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(p->self_exe, argv);
        _exit(127);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        rc = dg_error_set(err, DG_IO, "fork: %s", strerror(fork_errno));
        goto out;
    }
    sp->pid = pid;
    rc = dg_frame_write(sp->ctl_fd, DG_FRAME_REQ, init, (uint32_t)strlen(init));
    if (rc != DG_OK) {
        rc = dg_error_set(err, DG_IO, "engine %d died before init (exec of %s failed?)", idx,
                          p->self_exe);
    }

out:
    for (int k = 0; k < made && child; k++) {
        close(child[k]);
    }
    free(child);
    free(init);
    return rc;
}

static void spawn_discard(spawn_t *sp, int slots_per)
{
    if (sp->ctl_fd >= 0) {
        close(sp->ctl_fd);
        sp->ctl_fd = -1;
    }
    for (int k = 0; sp->slot_fds && k < slots_per; k++) {
        if (sp->slot_fds[k] >= 0) {
            close(sp->slot_fds[k]);
        }
    }
    free(sp->slot_fds);
    sp->slot_fds = NULL;
    if (sp->pid > 0) {
        kill(sp->pid, SIGKILL);
        waitpid(sp->pid, NULL, 0);
        sp->pid = 0;
    }
}

static bool is_stopping(dg_engines_t *p)
{
    pthread_mutex_lock(&p->mu);
    bool s = p->stopping;
    pthread_mutex_unlock(&p->mu);
    return s;
}

/* Waits for the init answer of a spawned engine. */
static dg_rc_t spawn_await(dg_engines_t *p, int idx, spawn_t *sp, dg_error_t *err)
{
    int64_t deadline = dg_now_ms() + INIT_TIMEOUT_MS;
    for (;;) {
        if (is_stopping(p)) {
            return dg_error_set(err, DG_DRAINING, "stopping");
        }
        int64_t left = deadline - dg_now_ms();
        if (left <= 0) {
            return dg_error_set(err, DG_IO, "engine %d did not answer init within %d ms", idx,
                                INIT_TIMEOUT_MS);
        }
        struct pollfd pfd = {.fd = sp->ctl_fd, .events = POLLIN};
        int k = poll(&pfd, 1, left < 100 ? (int)left : 100);
        if (k > 0) {
            break;
        }
    }
    dg_buf_t b;
    dg_buf_init(&b, DG_ENGINE__MAX_INIT);
    dg_frame_type_t type;
    dg_rc_t rc = dg_engine__frame_read_until(sp->ctl_fd, &type, &b, dg_now_ms() + 5000);
    if (rc != DG_OK || type != DG_FRAME_END) {
        dg_buf_free(&b);
        return dg_error_set(err, DG_IO, "engine %d exited during init (see its log above)", idx);
    }
    json_error_t jerr;
    json_t *o = json_loadb(b.p, b.len, 0, &jerr);
    dg_buf_free(&b);
    if (!o || !json_is_true(json_object_get(o, "ok"))) {
        const char *m = json_string_value(json_object_get(o, "error"));
        rc = dg_error_set(err, DG_IO, "engine %d: %s", idx, m ? m : "bad init answer");
        json_decref(o);
        return rc;
    }
    json_decref(o);
    return DG_OK;
}

/* Installs a spawned engine whose init succeeded: its slots join the pool. */
static dg_rc_t install_engine(dg_engines_t *p, int idx, spawn_t *sp)
{
    eng_t *e = &p->eng[idx];
    dg_slot_t **made = calloc((size_t)p->slots_per, sizeof *made);
    if (!made) {
        return DG_NOMEM;
    }
    for (int k = 0; k < p->slots_per; k++) {
        made[k] = calloc(1, sizeof **made);
        if (!made[k]) {
            for (int j = 0; j < k; j++) {
                free(made[j]);
            }
            free(made);
            return DG_NOMEM;
        }
    }
    pthread_mutex_lock(&p->mu);
    e->gen++;
    e->pid = sp->pid;
    e->ctl_fd = sp->ctl_fd;
    e->ctl_hup = false;
    e->kill_sent = false;
    e->kill_why[0] = '\0';
    for (int k = 0; k < p->slots_per; k++) {
        dg_slot_t *s = made[k];
        s->pool = p;
        s->eng = idx;
        s->gen = e->gen;
        s->fd = sp->slot_fds[k];
        s->kill_at_ms = -1;
        s->next_free = e->free_list;
        e->free_list = s;
        e->slots[k] = s;
    }
    e->n_free = p->slots_per;
    e->up = true;
    e->up_since_ms = dg_now_ms();
    if (e->ever_up) {
        p->restarts++;
    }
    e->ever_up = true;
    dispatch(p);
    wake_all(p);
    pthread_mutex_unlock(&p->mu);
    free(made);
    free(sp->slot_fds);
    sp->slot_fds = NULL;
    return DG_OK;
}

/* ---- supervision -------------------------------------------------------------------------- */

static void describe_status(int st, char *out, size_t cap)
{
    if (WIFSIGNALED(st)) {
        snprintf(out, cap, "signal %d (%s)%s", WTERMSIG(st), strsignal(WTERMSIG(st)),
                 WCOREDUMP(st) ? ", core dumped" : "");
    } else if (WIFEXITED(st)) {
        snprintf(out, cap, "exit code %d", WEXITSTATUS(st));
    } else {
        snprintf(out, cap, "status 0x%x", (unsigned)st);
    }
}

/* Records the death of engine idx (already reaped with status st). Under mu. */
static void engine_died(dg_engines_t *p, eng_t *e, int st)
{
    char why[128];
    describe_status(st, why, sizeof why);
    int64_t now = dg_now_ms();
    bool stable = e->up && now - e->up_since_ms >= STABLE_MS;
    if (!p->stopping) {
        DG_LOGE(MOD, "engine died index=%d pid=%ld cause=\"%s\"%s%s", e->idx, (long)e->pid, why,
                e->kill_sent ? " killed_by_front=" : "", e->kill_sent ? e->kill_why : "");
    }
    orphan_slots(p, e);
    if (e->ctl_fd >= 0) {
        close(e->ctl_fd);
        e->ctl_fd = -1;
    }
    e->pid = 0;
    e->ctl_hup = false;
    e->kill_sent = false;
    e->backoff_ms = stable || e->backoff_ms == 0
                        ? BACKOFF_MIN_MS
                        : (e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2);
    e->restart_at_ms = now + e->backoff_ms;
}

/* Spawns engine idx and waits for its init; on failure schedules the next try. */
static void restart_engine(dg_engines_t *p, int idx)
{
    spawn_t sp = {0};
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = spawn_engine(p, idx, &sp, &err);
    if (rc == DG_OK) {
        rc = spawn_await(p, idx, &sp, &err);
    }
    if (rc == DG_OK) {
        rc = install_engine(p, idx, &sp);
        if (rc == DG_OK) {
            DG_LOGI(MOD, "engine restarted index=%d pid=%ld", idx, (long)sp.pid);
            return;
        }
        dg_error_set(&err, rc, "out of memory");
    }
    spawn_discard(&sp, p->slots_per);
    pthread_mutex_lock(&p->mu);
    eng_t *e = &p->eng[idx];
    e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS
                        ? BACKOFF_MAX_MS
                        : (e->backoff_ms ? e->backoff_ms * 2 : BACKOFF_MIN_MS);
    e->restart_at_ms = dg_now_ms() + e->backoff_ms;
    bool stopping = p->stopping;
    int64_t backoff = e->backoff_ms;
    pthread_mutex_unlock(&p->mu);
    if (!stopping) {
        DG_LOGE(MOD, "engine restart failed index=%d retry_in_ms=%lld: %s", idx, (long long)backoff,
                err.msg);
    }
}

/* The initial spawn: all engines in parallel, then every init answer. */
static dg_rc_t initial_spawn(dg_engines_t *p, dg_error_t *err)
{
    spawn_t *sp = calloc((size_t)p->n_eng, sizeof *sp);
    dg_rc_t rc = DG_OK;
    if (!sp) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    for (int i = 0; i < p->n_eng; i++) {
        sp[i].ctl_fd = -1;
    }
    for (int i = 0; i < p->n_eng && rc == DG_OK; i++) {
        rc = spawn_engine(p, i, &sp[i], err);
    }
    for (int i = 0; i < p->n_eng && rc == DG_OK; i++) {
        rc = spawn_await(p, i, &sp[i], err);
    }
    for (int i = 0; i < p->n_eng && rc == DG_OK; i++) {
        rc = install_engine(p, i, &sp[i]);
        if (rc != DG_OK) {
            dg_error_set(err, rc, "out of memory");
        }
    }
    if (rc != DG_OK) {
        /* Installed engines are terminated by the supervisor's stop path. */
        for (int i = 0; i < p->n_eng; i++) {
            if (sp[i].slot_fds) {
                spawn_discard(&sp[i], p->slots_per);
            }
        }
    }
    free(sp);
    return rc;
}

/* Reaps engines that exited. Under mu. */
static void reap(dg_engines_t *p)
{
    for (int i = 0; i < p->n_eng; i++) {
        eng_t *e = &p->eng[i];
        if (e->pid <= 0) {
            continue;
        }
        int st = 0;
        pid_t r = waitpid(e->pid, &st, WNOHANG);
        if (r == e->pid) {
            engine_died(p, e, st);
        } else if (r < 0 && errno == ECHILD) {
            /* Someone else reaped it (a stray waitpid(-1) elsewhere): treat as dead. */
            engine_died(p, e, 0);
        }
    }
}

/* Stop path: close control sockets (engines exit on EOF), SIGTERM, SIGKILL, reap. */
static void terminate_all(dg_engines_t *p)
{
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_eng; i++) {
        eng_t *e = &p->eng[i];
        if (e->ctl_fd >= 0) {
            close(e->ctl_fd);
            e->ctl_fd = -1;
        }
        if (e->pid > 0) {
            kill(e->pid, SIGTERM);
        }
    }
    pthread_mutex_unlock(&p->mu);
    int64_t deadline = dg_now_ms() + TERM_WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        reap(p);
        int alive = 0;
        for (int i = 0; i < p->n_eng; i++) {
            alive += p->eng[i].pid > 0;
        }
        if (alive && dg_now_ms() >= deadline) {
            for (int i = 0; i < p->n_eng; i++) {
                eng_t *e = &p->eng[i];
                if (e->pid > 0) {
                    kill(e->pid, SIGKILL);
                    int st = 0;
                    waitpid(e->pid, &st, 0);
                    engine_died(p, e, st);
                }
            }
            alive = 0;
        }
        pthread_mutex_unlock(&p->mu);
        if (!alive) {
            break;
        }
        dg_sleep_ms(10);
    }
}

static void *supervisor_main(void *arg)
{
    dg_engines_t *p = arg;
    dg_error_t err;
    dg_error_clear(&err);
    dg_rc_t rc = initial_spawn(p, &err);
    pthread_mutex_lock(&p->mu);
    p->init_done = true;
    p->init_rc = rc;
    snprintf(p->init_msg, sizeof p->init_msg, "%s", err.msg);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);

    struct pollfd *pfd = calloc((size_t)p->n_eng + 1, sizeof *pfd);
    int *which = calloc((size_t)p->n_eng + 1, sizeof *which);
    while (rc == DG_OK && pfd && which) {
        int n = 0;
        int timeout = SUPERVISE_TICK_MS;
        int due = -1;
        pthread_mutex_lock(&p->mu);
        if (p->stopping) {
            pthread_mutex_unlock(&p->mu);
            break;
        }
        reap(p);
        int64_t now = dg_now_ms();
        pfd[n].fd = p->wake_fd;
        pfd[n].events = POLLIN;
        which[n++] = -1;
        for (int i = 0; i < p->n_eng; i++) {
            eng_t *e = &p->eng[i];
            if (e->pid > 0 && e->ctl_fd >= 0 && !e->ctl_hup) {
                pfd[n].fd = e->ctl_fd;
                pfd[n].events = POLLIN;
                which[n++] = i;
            } else if (e->pid == 0 && !p->draining && due < 0) {
                if (e->restart_at_ms <= now) {
                    due = i;
                } else if (e->restart_at_ms - now < timeout) {
                    timeout = (int)(e->restart_at_ms - now);
                }
            }
        }
        pthread_mutex_unlock(&p->mu);
        if (due >= 0) {
            restart_engine(p, due);
            continue;
        }
        for (int j = 0; j < n; j++) {
            pfd[j].revents = 0;
        }
        int k = poll(pfd, (nfds_t)n, timeout);
        if (k <= 0) {
            continue;
        }
        if (pfd[0].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(p->wake_fd, &v, sizeof v);
            (void)r;
        }
        pthread_mutex_lock(&p->mu);
        for (int j = 1; j < n; j++) {
            if (pfd[j].revents) {
                /* The engine never writes after init, so any event is its death (EOF). It is
                 * reaped once it has exited; stop polling the descriptor meanwhile. */
                p->eng[which[j]].ctl_hup = true;
            }
        }
        reap(p);
        pthread_mutex_unlock(&p->mu);
    }
    free(pfd);
    free(which);
    terminate_all(p);
    return NULL;
}

/* ---- public API ----------------------------------------------------------------------------- */

static void pool_free(dg_engines_t *p)
{
    if (!p) {
        return;
    }
    for (int i = 0; p->eng && i < p->n_eng; i++) {
        free(p->eng[i].slots);
    }
    free(p->eng);
    dg_dbfiles_free(p->files, p->n_files);
    free(p->self_exe);
    if (p->wake_fd >= 0) {
        close(p->wake_fd);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Calls fn for every name of the comma-separated list (spaces around names are ignored);
 * stops and returns true when fn does. */
static bool each_listed(const char *list, bool (*fn)(const char *name, size_t len, void *ctx),
                        void *ctx)
{
    const char *p = list ? list : "";
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *a = p, *b = p + len;
        while (a < b && (*a == ' ' || *a == '\t')) {
            a++;
        }
        while (b > a && (b[-1] == ' ' || b[-1] == '\t')) {
            b--;
        }
        if (b > a && fn(a, (size_t)(b - a), ctx)) {
            return true;
        }
        p = end ? end + 1 : p + len;
    }
    return false;
}

static bool name_equals(const char *name, size_t len, void *ctx)
{
    const char *db = ctx;
    return strlen(db) == len && memcmp(db, name, len) == 0;
}

bool dg_engines_is_read_write(const dg_config_t *cfg, const char *db)
{
    return db && each_listed(cfg->read_write_databases, name_equals, (void *)(uintptr_t)db);
}

typedef struct rw_check {
    const dg_dbfile_t *files;
    size_t n;
    char bad[80];
} rw_check_t;

static bool name_unknown(const char *name, size_t len, void *ctx)
{
    rw_check_t *c = ctx;
    for (size_t i = 0; i < c->n; i++) {
        if (strlen(c->files[i].name) == len && memcmp(c->files[i].name, name, len) == 0) {
            return false;
        }
    }
    snprintf(c->bad, sizeof c->bad, "%.*s", (int)(len < 64 ? len : 64), name);
    return true;
}

/* Every name in read_write_databases must be a served database: a typo would otherwise leave
 * the intended database read-only without a word. */
static dg_rc_t check_read_write(const dg_config_t *cfg, const dg_dbfile_t *files, size_t n,
                                dg_error_t *err)
{
    rw_check_t c = {.files = files, .n = n};
    if (each_listed(cfg->read_write_databases, name_unknown, &c)) {
        return dg_error_set(err, DG_CONFIG,
                            "read_write_databases names '%s', which is not a database in data_dir",
                            c.bad);
    }
    return DG_OK;
}

dg_rc_t dg_engines_start(const dg_engines_opts_t *opts, dg_engines_t **out, dg_error_t *err)
{
    *out = NULL;
    const dg_config_t *cfg = opts->cfg;
    if (cfg->engines < 1 || cfg->slots < 1) {
        return dg_error_set(err, DG_CONFIG, "engines and slots must be at least 1");
    }
    dg_engines_t *p = calloc(1, sizeof *p);
    if (!p) {
        return dg_error_set(err, DG_NOMEM, "out of memory");
    }
    p->wake_fd = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    p->cfg = cfg;
    p->res = opts->res;
    p->n_eng = cfg->engines;
    p->slots_per = cfg->slots;
    p->self_exe = strdup(opts->self_exe ? opts->self_exe : "/proc/self/exe");
    p->eng = calloc((size_t)p->n_eng, sizeof *p->eng);
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    dg_rc_t rc = DG_OK;
    if (!p->self_exe || !p->eng || p->wake_fd < 0) {
        rc = dg_error_set(err, DG_NOMEM, "cannot allocate the engine pool");
        goto fail;
    }
    for (int i = 0; i < p->n_eng; i++) {
        p->eng[i].idx = i;
        p->eng[i].ctl_fd = -1;
        p->eng[i].slots = calloc((size_t)p->slots_per, sizeof *p->eng[i].slots);
        if (!p->eng[i].slots) {
            rc = dg_error_set(err, DG_NOMEM, "cannot allocate the engine pool");
            goto fail;
        }
    }
    rc = dg_datadir_scan(cfg->data_dir, &p->files, &p->n_files, err);
    if (rc != DG_OK) {
        goto fail;
    }
    rc = check_read_write(cfg, p->files, p->n_files, err);
    if (rc != DG_OK) {
        goto fail;
    }
    uint64_t budget = opts->res ? opts->res->budget_bytes : 0;
    p->mem_per_instance = budget / (uint64_t)p->n_eng;
    p->as_limit = cfg->engine_as_limit
                      ? cfg->engine_as_limit
                      : as_limit_auto(p->mem_per_instance, p->n_files, p->slots_per,
                                      opts->res ? opts->res->threads : 1);
#ifdef DG_ENGINE_ASAN
    /* ASan reserves terabytes of shadow memory: any address-space cap breaks it. */
    p->as_limit = 0;
#endif
    DG_LOGI(MOD,
            "starting engines=%d slots=%d databases=%zu memory_limit_per_instance=%llu "
            "rlimit_as=%llu threads=%d",
            p->n_eng, p->slots_per, p->n_files, (unsigned long long)p->mem_per_instance,
            (unsigned long long)p->as_limit, opts->res ? opts->res->threads : 0);

    if (pthread_create(&p->sup, NULL, supervisor_main, p) != 0) {
        rc = dg_error_set(err, DG_INTERNAL, "cannot create the supervisor thread");
        goto fail;
    }
    pthread_mutex_lock(&p->mu);
    while (!p->init_done) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    rc = p->init_rc;
    pthread_mutex_unlock(&p->mu);
    if (rc != DG_OK) {
        /* The supervisor terminated whatever it started; joining it reaps them. */
        pthread_join(p->sup, NULL);
        dg_error_set(err, rc == DG_NOMEM ? DG_NOMEM : DG_IO, "%s", p->init_msg);
        rc = rc == DG_NOMEM ? DG_NOMEM : DG_IO;
        for (int i = 0; i < p->n_eng; i++) {
            orphan_slots(p, &p->eng[i]);
        }
        goto fail;
    }
    *out = p;
    return DG_OK;

fail:
    pool_free(p);
    return rc;
}

void dg_engines_stop(dg_engines_t *p, int64_t drain_ms)
{
    if (!p) {
        return;
    }
    struct timespec ts;
    pthread_mutex_lock(&p->mu);
    p->draining = true;
    wake_all(p);
    abs_deadline(&ts, drain_ms > 0 ? drain_ms : 0);
    while (p->leased > 0) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    if (p->leased > 0) {
        DG_LOGW(MOD, "drain timed out; terminating engines with %d queries running", p->leased);
    }
    p->stopping = true;
    pthread_mutex_unlock(&p->mu);
    wake_supervisor(p);
    pthread_join(p->sup, NULL);

    /* The engines are gone, so holders see EOF at once; wait for them to hand back their
     * slots before freeing what they point to. */
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_eng; i++) {
        orphan_slots(p, &p->eng[i]);
    }
    abs_deadline(&ts, 5000);
    while (p->leased > 0 || p->q_len > 0) {
        if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool busy = p->leased > 0 || p->q_len > 0;
    pthread_mutex_unlock(&p->mu);
    if (busy) {
        DG_LOGE(MOD, "slots still leased after stop; leaking the pool rather than freeing it "
                     "under their holders");
        return;
    }
    pool_free(p);
}

bool dg_engines_ready(dg_engines_t *p)
{
    if (!p) {
        return false;
    }
    pthread_mutex_lock(&p->mu);
    bool ready = !p->draining;
    for (int i = 0; i < p->n_eng && ready; i++) {
        ready = p->eng[i].up && !p->eng[i].kill_sent;
    }
    pthread_mutex_unlock(&p->mu);
    return ready;
}

static bool client_gone(int fd, short revents, bool *watch);

/* Polls the client socket without waiting; true when it hung up. */
static bool client_gone_now(int fd, bool *watch)
{
    if (fd < 0 || !*watch) {
        return false;
    }
    struct pollfd pfd = {fd, POLLRDHUP, 0};
    return poll(&pfd, 1, 0) > 0 && client_gone(fd, pfd.revents, watch);
}

dg_rc_t dg_engines_acquire(dg_engines_t *p, int client_fd, dg_slot_t **out, int *out_retry_after_s)
{
    return dg_engines_acquire_on(p, -1, client_fd, out, out_retry_after_s);
}

dg_rc_t dg_engines_acquire_on(dg_engines_t *p, int engine_idx, int client_fd, dg_slot_t **out,
                              int *out_retry_after_s)
{
    *out = NULL;
    if (out_retry_after_s) {
        *out_retry_after_s = 0;
    }
    dg_rc_t rc = DG_OK;
    if (engine_idx >= p->n_eng || engine_idx < -1) {
        return DG_INTERNAL;
    }
    pthread_mutex_lock(&p->mu);
    if (p->draining) {
        rc = DG_DRAINING;
        goto out;
    }
    /* Queued requests go first: a newcomer may not overtake them. After dispatch() every free
     * slot left is one no queued waiter can use, so taking it overtakes nobody. */
    dispatch(p);
    *out = take_best(p, engine_idx);
    if (*out) {
        goto out;
    }
    if (p->q_len >= p->cfg->queue_len || p->cfg->queue_timeout_ms <= 0) {
        rc = DG_OVERLOADED;
        goto out;
    }
    waiter_t w = {.want = engine_idx};
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &ca);
    pthread_condattr_destroy(&ca);
    if (p->q_tail) {
        p->q_tail->next = &w;
    } else {
        p->q_head = &w;
    }
    p->q_tail = &w;
    p->q_len++;
    /* Wait in short slices so a client that hangs up while queued leaves the queue promptly. */
    int64_t give_up = dg_now_ms() + p->cfg->queue_timeout_ms;
    bool watch = client_fd >= 0, gone = false;
    while (!w.slot && !p->draining) {
        int64_t now = dg_now_ms();
        if (now >= give_up || (gone = client_gone_now(client_fd, &watch))) {
            break;
        }
        struct timespec ts;
        abs_deadline(&ts, give_up - now < QUEUE_POLL_MS ? give_up - now : QUEUE_POLL_MS);
        pthread_cond_timedwait(&w.cv, &p->mu, &ts);
    }
    /* Off the queue now (dispatch() took it, or it is removed below): nobody signals w.cv. */
    if (w.slot) {
        pthread_cond_destroy(&w.cv);
        *out = w.slot;
        goto out;
    }
    queue_remove(p, &w);
    pthread_cond_destroy(&w.cv);
    rc = p->draining ? DG_DRAINING : gone ? DG_CLIENT_GONE : DG_OVERLOADED;
    pthread_cond_broadcast(&p->cv); /* stop() may be waiting for the queue to empty */

out:
    if (rc == DG_OVERLOADED && out_retry_after_s) {
        *out_retry_after_s = RETRY_AFTER_S;
    }
    if (*out) {
        dg_slot_t *s = *out;
        s->in_request = false;
        s->cancel_sent = false;
        s->broken = false;
        s->kill_at_ms = -1;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

dg_rc_t dg_engines_try_acquire(dg_engines_t *p, int idx, dg_slot_t **out)
{
    *out = NULL;
    pthread_mutex_lock(&p->mu);
    dg_rc_t rc = p->draining ? DG_DRAINING : DG_OVERLOADED;
    eng_t *e = idx >= 0 && idx < p->n_eng ? &p->eng[idx] : NULL;
    if (!p->draining) {
        dispatch(p); /* queued requests go first; what is left, none of them can use */
    }
    if (!p->draining && e && e->up && !e->kill_sent && e->n_free > 0) {
        dg_slot_t *s = e->free_list;
        e->free_list = s->next_free;
        e->n_free--;
        s->next_free = NULL;
        s->leased = true;
        p->leased++;
        s->in_request = false;
        s->cancel_sent = false;
        s->broken = false;
        s->kill_at_ms = -1;
        *out = s;
        rc = DG_OK;
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

/* SIGKILLs the engine of slot s if it is still the same process. */
static void kill_engine(dg_slot_t *s, const char *why)
{
    dg_engines_t *p = s->pool;
    pthread_mutex_lock(&p->mu);
    eng_t *e = &p->eng[s->eng];
    if (e->gen == s->gen && e->pid > 0 && !e->kill_sent) {
        kill(e->pid, SIGKILL);
        e->kill_sent = true;
        snprintf(e->kill_why, sizeof e->kill_why, "%s", why);
        p->kills++;
        DG_LOGW(MOD, "killing engine index=%d pid=%ld reason=%s", e->idx, (long)e->pid, why);
    }
    pthread_mutex_unlock(&p->mu);
    wake_supervisor(p);
}

dg_rc_t dg_slot_send(dg_slot_t *s, const char *req_json, size_t len, int64_t deadline_ms)
{
    if (s->broken) {
        return DG_ENGINE_FAILED;
    }
    if (s->in_request) {
        return DG_INTERNAL; /* the previous request was not read to its END/ERROR */
    }
    if (len > DG_FRAME_MAX_PAYLOAD) {
        return DG_BODY_TOO_LARGE;
    }
    s->kill_at_ms = deadline_ms > 0 ? deadline_ms + s->pool->cfg->kill_grace_ms : -1;
    s->cancel_sent = false;
    s->watch_client = true;
    dg_rc_t rc = dg_frame_write(s->fd, DG_FRAME_REQ, req_json, (uint32_t)len);
    if (rc != DG_OK) {
        s->broken = true;
        return DG_ENGINE_FAILED;
    }
    s->in_request = true;
    return DG_OK;
}

void dg_slot_cancel(dg_slot_t *s)
{
    if (!s || !s->in_request || s->cancel_sent || s->broken) {
        return;
    }
    s->cancel_sent = true;
    if (dg_frame_write(s->fd, DG_FRAME_CANCEL, NULL, 0) != DG_OK) {
        s->broken = true;
    }
}

/* True when the client socket is really gone (not merely half-closed after pipelining). */
static bool client_gone(int fd, short revents, bool *watch)
{
    if (revents & POLLNVAL) {
        *watch = false;
        return false;
    }
    if (revents & (POLLHUP | POLLERR)) {
        return true;
    }
    if (revents & POLLRDHUP) {
        char c;
        ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        if (n == 0) {
            return true;
        }
        /* Pipelined bytes before the FIN (or no verdict): stop watching, or poll would spin
         * on the level-triggered RDHUP. */
        *watch = false;
    }
    return false;
}

dg_rc_t dg_slot_read(dg_slot_t *s, int client_fd, dg_frame_type_t *out_type, dg_buf_t *payload)
{
    if (s->broken) {
        return DG_ENGINE_FAILED;
    }
    if (!s->in_request) {
        return DG_INTERNAL;
    }
    for (;;) {
        int64_t now = dg_now_ms();
        if (s->kill_at_ms >= 0 && now >= s->kill_at_ms) {
            kill_engine(s, "deadline");
            s->broken = true;
            s->in_request = false;
            return DG_TIMEOUT;
        }
        struct pollfd pfd[2] = {{.fd = s->fd, .events = POLLIN}};
        nfds_t n = 1;
        if (client_fd >= 0 && s->watch_client) {
            pfd[1].fd = client_fd;
            pfd[1].events = POLLRDHUP;
            n = 2;
        }
        int timeout = -1;
        if (s->kill_at_ms >= 0) {
            int64_t left = s->kill_at_ms - now;
            timeout = left > 60000 ? 60000 : (int)left;
        }
        int k = poll(pfd, n, timeout);
        if (k < 0) {
            if (errno == EINTR) {
                continue;
            }
            s->broken = true;
            s->in_request = false;
            return DG_ENGINE_FAILED;
        }
        if (k == 0) {
            continue;
        }
        if (n == 2 && pfd[1].revents && client_gone(client_fd, pfd[1].revents, &s->watch_client)) {
            dg_slot_cancel(s);
            return DG_CLIENT_GONE;
        }
        if (!(pfd[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            continue;
        }
        dg_frame_type_t type;
        dg_rc_t rc = dg_engine__frame_read_until(s->fd, &type, payload, s->kill_at_ms);
        if (rc == DG_TIMEOUT) {
            continue; /* the kill deadline check above handles it */
        }
        if (rc != DG_OK) {
            s->broken = true;
            s->in_request = false;
            if (rc == DG_PROTOCOL) {
                /* EOF is the engine dying; anything else is a stream we cannot resync, from an
                 * engine we can no longer trust. */
                char c;
                if (recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) != 0) {
                    kill_engine(s, "protocol");
                }
            }
            return rc == DG_NOMEM ? DG_NOMEM : DG_ENGINE_FAILED;
        }
        if (type == DG_FRAME_END || type == DG_FRAME_ERROR) {
            s->in_request = false;
        } else if (type != DG_FRAME_HEAD && type != DG_FRAME_DATA && type != DG_FRAME_PROGRESS) {
            /* REQ/CANCEL from an engine: it is confused; do not trust its stream. */
            s->broken = true;
            s->in_request = false;
            kill_engine(s, "protocol");
            return DG_ENGINE_FAILED;
        }
        *out_type = type;
        return DG_OK;
    }
}

void dg_engines_release(dg_engines_t *p, dg_slot_t *s)
{
    if (!s) {
        return;
    }
    if (s->in_request && !s->broken) {
        /* Cancel and read the rest of the answer so the slot starts clean for the next
         * holder. Bounded by the kill deadline (the engine is killed past it). */
        dg_slot_cancel(s);
        dg_buf_t tmp;
        dg_buf_init(&tmp, DG_FRAME_MAX_PAYLOAD);
        while (s->in_request && !s->broken) {
            dg_frame_type_t t;
            if (dg_slot_read(s, -1, &t, &tmp) != DG_OK) {
                break;
            }
        }
        dg_buf_free(&tmp);
    }
    pthread_mutex_lock(&p->mu);
    s->leased = false;
    p->leased--;
    eng_t *e = &p->eng[s->eng];
    if (s->orphaned) {
        slot_free(s);
    } else if (s->broken || e->gen != s->gen || !e->up) {
        for (int k = 0; k < p->slots_per; k++) {
            if (e->slots[k] == s) {
                e->slots[k] = NULL;
            }
        }
        slot_free(s);
    } else {
        s->next_free = e->free_list;
        e->free_list = s;
        e->n_free++;
        dispatch(p);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void dg_engines_stats(dg_engines_t *p, dg_engines_stats_t *out)
{
    memset(out, 0, sizeof *out);
    if (!p) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_eng; i++) {
        if (p->eng[i].up) {
            out->engines_up++;
            out->slots_total += p->slots_per;
        }
    }
    out->slots_busy = p->leased;
    out->queue_depth = p->q_len;
    out->restarts = p->restarts;
    out->kills = p->kills;
    pthread_mutex_unlock(&p->mu);
}

int dg_engines_pids(dg_engines_t *p, int *out_pids, int max)
{
    int n = 0;
    if (!p) {
        return 0;
    }
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < p->n_eng && n < max; i++) {
        if (p->eng[i].pid > 0) {
            out_pids[n++] = (int)p->eng[i].pid;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return n;
}
