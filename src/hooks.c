/*
 * hooks.c -- running hooks (see hooks.h).
 *
 * A hook runs in a process group of its own so that a timeout kills
 * everything it started (a deploy script's children included): first
 * SIGTERM to the group, then SIGKILL after a grace period.  The parent
 * reads the merged stdout/stderr through one pipe with poll(), so a hook
 * that prints a lot never blocks on a full pipe.  The hook is over when
 * its own process exits (its output is read DRAIN_MS longer): a daemon it
 * started, which may hold the pipe for ever, neither delays zdm nor makes
 * the hook fail.  ZDM_PLAN_FILE and a sqlite: ZDM_DATABASE_URL are made
 * absolute, since the hook runs from the plan's directory.
 */
#include "hooks.h"
#include "mutant.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "db.h"
#include "log.h"
#include "sig.h"
#include "util.h"

#define TAIL_LINES 20
#define KILL_GRACE_MS 5000
#define DRAIN_MS 1000 /* output read after the hook exited */
#define POLL_MS 100

int zdm_project_load(const char *plans_dir, zdm_project *out, zdm_diags *diags)
{
    memset(out, 0, sizeof *out);
    out->hooks.timeout_ms = 300000;
    out->hooks.inherit = 1;
    zdm_contract_defaults_init(&out->contract);
    /* zdm.toml lives beside the plans directory: in its parent. */
    char *dir = zdm_xstrdup(plans_dir);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        dir[--n] = '\0';
    char *slash = strrchr(dir, '/');
    char *path;
    if (!slash)
        path = zdm_xstrdup("zdm.toml");
    else if (slash == dir)
        path = zdm_xstrdup("/zdm.toml");
    else {
        *slash = '\0';
        path = zdm_xasprintf("%s/zdm.toml", dir);
    }
    free(dir);
    struct stat st;
    if (stat(path, &st) != 0) {
        free(path);
        return 0;
    }
    zdm_err err;
    zdm_err_clear(&err);
    toml_value *doc = NULL;
    if (toml_parse_file(path, &doc, &err) != 0) {
        zdm_strv_push(&diags->msgs, err.msg);
        free(path);
        return ZDM_EXIT_USAGE;
    }
    int rc = zdm_hooks_load_doc(path, doc, &out->hooks, diags);
    int rc2 = zdm_project_contract_load(path, doc, &out->contract, diags);
    if (rc == 0 && rc2 != 0) {
        zdm_hooks_free(&out->hooks);
        rc = rc2;
    }
    if (rc != 0) {
        toml_free(doc);
        free(path);
        memset(out, 0, sizeof *out);
        zdm_contract_defaults_init(&out->contract);
        return rc;
    }
    out->doc = doc;
    out->path = path;
    return 0;
}

void zdm_project_apply_defaults(const zdm_project *proj, zdm_plan_set *set)
{
    for (size_t i = 0; proj->contract.not_before_ms >= 0 && i < set->n; i++)
        if (set->plans[i]->not_before_ms < 0)
            set->plans[i]->not_before_ms = proj->contract.not_before_ms;
}

void zdm_project_free(zdm_project *p)
{
    zdm_hooks_free(&p->hooks);
    toml_free(p->doc);
    free(p->path);
    memset(p, 0, sizeof *p);
}

char *zdm_url_without_password(const char *safe_url)
{
    /* The db module's own parser, in the mode that leaves passwords out
     * (a "*****" would be sent as the password): the same key rules as the
     * redaction (sslpassword, %-encoded keys), so the result is the input's
     * form, accepted by libpq, minus its secrets. */
    char *s = zdm_db_url_without_password(safe_url ? safe_url : "");
    return s ? s : zdm_xstrdup("");
}

size_t zdm_hooks_count(const zdm_project *proj, const zdm_plan *plan, zdm_hook_event ev)
{
    size_t n = plan->hooks.n[ev];
    if (proj && plan->hooks.inherit)
        n += proj->hooks.n[ev];
    return n;
}

/* Keeps the last TAIL_LINES lines of a hook's output. */
typedef struct tail_ring {
    char *lines[TAIL_LINES];
    int next, count;
} tail_ring;

static void ring_push(tail_ring *r, const char *line)
{
    free(r->lines[r->next]);
    r->lines[r->next] = zdm_xstrdup(line);
    r->next = (r->next + 1) % TAIL_LINES;
    if (r->count < TAIL_LINES)
        r->count++;
}

static void ring_dump(tail_ring *r, zdm_buf *out)
{
    int start = (r->next - r->count + TAIL_LINES) % TAIL_LINES;
    for (int i = 0; i < r->count; i++)
        zdm_buf_printf(out, "%s\n", r->lines[(start + i) % TAIL_LINES]);
}

static void ring_free(tail_ring *r)
{
    for (int i = 0; i < TAIL_LINES; i++)
        free(r->lines[i]);
}

static void child(const zdm_plan *plan, const zdm_hook_cmd *cmd, zdm_hook_event ev,
                  const zdm_hook_env *env, int out_fd, pid_t parent) __attribute__((noreturn));

/* `path` as seen from `here` (zdm's directory), so that it still names the
 * same file once the hook runs from the plan's directory. */
static char *abs_from(const char *here, const char *path)
{
    if (!here || path[0] == '/')
        return zdm_xstrdup(path);
    while (path[0] == '.' && path[1] == '/')
        path += 2;
    return zdm_xasprintf("%s/%s", here, path);
}

/* A relative sqlite:FILE (or sqlite://FILE) made absolute, for the same
 * reason; other URLs unchanged. */
static char *hook_db_url(const char *here, const char *url)
{
    if (!url)
        return zdm_xstrdup("");
    if (strncasecmp(url, "sqlite:", 7) != 0)
        return zdm_xstrdup(url);
    const char *p = url + 7;
    if (p[0] == '/' && p[1] == '/')
        p += 2;
    if (!*p || p[0] == '/' || p[0] == ':' || strncmp(p, "file:", 5) == 0 || !here)
        return zdm_xstrdup(url);
    char *abs = abs_from(here, p);
    char *out = zdm_xasprintf("sqlite:%s", abs);
    free(abs);
    return out;
}

/* In the child: own process group, the plan's directory, the documented
 * environment, output to the pipe, then exec without a shell. */
static void child(const zdm_plan *plan, const zdm_hook_cmd *cmd, zdm_hook_event ev,
                  const zdm_hook_env *env, int out_fd, pid_t parent)
{
    setpgid(0, 0);
#ifdef __linux__
    /* zdm killed with SIGKILL cannot stop its hook: the kernel tells the
     * hook instead (SIGTERM), so a switch does not go on unrecorded.  A
     * zdm already gone before this line is caught by getppid(). */
    if (!zdm_mutant("hook_outlives_zdm")) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(143);
    }
#else
    (void)parent;
#endif
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    close(out_fd);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) {
        dup2(devnull, 0);
        close(devnull);
    }
    /* Paths relative to zdm's directory would be wrong from the plan's. */
    char here[4096], there[4096];
    const char *cwd = getcwd(here, sizeof here);
    char *plan_file = abs_from(cwd, plan->path);
    char *db_url = hook_db_url(cwd, env->db_url);
    if (chdir(plan->dir) != 0) {
        fprintf(stderr, "zdm: cannot enter %s: %s\n", plan->dir, strerror(errno));
        _exit(126);
    }
    if (getcwd(there, sizeof there))
        setenv("PWD", there, 1);
    char hid[32];
    snprintf(hid, sizeof hid, "%lld", env->history_id);
    setenv("ZDM_PLAN", plan->id, 1);
    setenv("ZDM_EVENT", zdm_hook_event_name(ev), 1);
    setenv("ZDM_PHASE", env->phase ? env->phase : "", 1);
    setenv("ZDM_NEXT_PHASE", env->next_phase ? env->next_phase : "", 1);
    setenv("ZDM_FROM_PHASE", env->from_phase ? env->from_phase : "", 1);
    setenv("ZDM_TO_PHASE", env->to_phase ? env->to_phase : "", 1);
    setenv("ZDM_DIALECT", env->dialect ? env->dialect : "", 1);
    setenv("ZDM_DATABASE_URL", db_url, 1);
    setenv("ZDM_HISTORY_ID", hid, 1);
    if (env->error) {
        char code[16];
        snprintf(code, sizeof code, "%d", env->exit_code);
        /* one line, as documented: a failed hook's output quoted in the
         * message had its newlines (a webhook's one-line format broke) */
        zdm_buf one = {0};
        for (const char *q = env->error; *q; q++) {
            if (*q == '\n' && q[1])
                zdm_buf_puts(&one, " | ");
            else if (*q != '\n' && *q != '\r')
                zdm_buf_printf(&one, "%c", *q);
        }
        setenv("ZDM_ERROR", one.data ? one.data : "", 1);
        zdm_buf_free(&one);
        setenv("ZDM_EXIT_CODE", code, 1);
    } else {
        unsetenv("ZDM_ERROR");
        unsetenv("ZDM_EXIT_CODE");
    }
    setenv("ZDM_PLAN_FILE", plan_file, 1);
    /* The parent may hold a password in its environment: never pass it on. */
    unsetenv("PGPASSWORD");
    execvp(cmd->argv.v[0], cmd->argv.v);
    fprintf(stderr, "zdm: cannot run %s: %s\n", cmd->argv.v[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
}

static void kill_group(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0 && errno == ESRCH)
        kill(pid, sig);
}

/* A running hook, as run_one watches it. */
typedef struct hook_run {
    pid_t pid;
    int fd;           /* the read end of its output */
    int out_open, reaped, timed_out, interrupted, wstatus;
    int64_t deadline, kill_at, drain_until;
    zdm_buf line;     /* the output line being read */
    const char *plan_id;
    char tag[160];
    tail_ring *ring;
} hook_run;

/* Forks the hook (its output on a pipe, read non-blocking); -1 with
 * `status` set when that fails. */
static int spawn(const zdm_plan *plan, const zdm_hook_cmd *cmd, zdm_hook_event ev, const zdm_hook_env *env,
                 hook_run *h, char *status, size_t status_size)
{
    int fds[2];
    if (pipe(fds) != 0) {
        snprintf(status, status_size, "could not create a pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t self = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        snprintf(status, status_size, "could not fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        child(plan, cmd, ev, env, fds[1], self);
    }
    setpgid(pid, pid); /* also here, so the group exists before any kill */
    close(fds[1]);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    h->pid = pid;
    h->fd = fds[0];
    return 0;
}

/* A line of the hook's output as zdm may print it: control characters
 * (a terminal's escape sequences, which rewrote the operator's screen and
 * the history's text; a NUL, which cut the line short) and C1 controls
 * (U+0080..U+009F, CSI among them) shown as \xNN, a carriage return
 * dropped (a line ending in CRLF). */
static char *printable_line(const zdm_buf *line)
{
    zdm_buf out = {0};
    zdm_buf_puts(&out, "");
    for (size_t i = 0; i < line->len; i++) {
        unsigned char ch = (unsigned char)line->data[i];
        unsigned char next = i + 1 < line->len ? (unsigned char)line->data[i + 1] : 0;
        if (ch == '\r')
            continue;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            zdm_buf_printf(&out, "\\x%02x", ch);
        } else if (ch == 0xc2 && next >= 0x80 && next <= 0x9f) {
            zdm_buf_printf(&out, "\\x%02x", next);
            i++;
        } else {
            zdm_buf_putn(&out, (const char *)&line->data[i], 1);
        }
    }
    return zdm_buf_take(&out);
}

/* The hook's output, line by line, to the log and the tail ring. */
static void take_output(hook_run *h, const char *buf, ssize_t n)
{
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            /* the hook's own words, set apart from zdm's */
            char *line = printable_line(&h->line);
            zdm_log(ZDM_LOG_INFO, h->plan_id, h->tag, "  | %s", line);
            ring_push(h->ring, line);
            free(line);
            h->line.len = 0;
            if (h->line.data)
                h->line.data[0] = '\0';
        } else if (h->line.len < 4000) {
            zdm_buf_putn(&h->line, &buf[i], 1);
        }
    }
}

/* zdm itself was asked to stop: so is the hook, whole group, with the same
 * grace as a timeout, so it cannot finish a switch that zdm would not
 * record.  Past the deadline: SIGTERM; past the grace: SIGKILL. */
static void stop_when_due(hook_run *h, int64_t now)
{
    if (h->reaped)
        return;
    if (!h->timed_out && zdm_sig_caught()) {
        h->timed_out = h->interrupted = 1;
        kill_group(h->pid, SIGTERM);
        h->kill_at = now + KILL_GRACE_MS;
    } else if (!h->timed_out && now >= h->deadline) {
        h->timed_out = 1;
        kill_group(h->pid, SIGTERM);
        h->kill_at = now + KILL_GRACE_MS;
    } else if (h->timed_out && h->kill_at && now >= h->kill_at) {
        kill_group(h->pid, SIGKILL);
        h->kill_at = 0;
    }
}

/* Waits up to wait_ms for output and takes what came. */
static void read_output(hook_run *h, int64_t wait_ms)
{
    char buf[4096];
    struct pollfd pfd = {h->fd, POLLIN, 0};
    int pr = poll(&pfd, 1, (int)wait_ms);
    if (pr < 0 && errno != EINTR)
        h->out_open = 0;
    if (pr <= 0)
        return;
    ssize_t n = read(h->fd, buf, sizeof buf);
    if (n == 0) {
        h->out_open = 0;
    } else if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            h->out_open = 0;
        return;
    }
    take_output(h, buf, n);
}

/* How the hook ended, in `status`; 0 success, -2 stopped by a signal to
 * zdm, -1 otherwise. */
static int end_status(const hook_run *h, int64_t timeout_ms, char *status, size_t status_size)
{
    char d[32];
    int ws = h->wstatus;
    if (h->interrupted) {
        snprintf(status, status_size, "stopped: zdm got signal %d (its process group got SIGTERM%s)",
                 zdm_sig_first(), WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL ? ", then SIGKILL" : "");
        return -2;
    }
    if (h->timed_out) {
        snprintf(status, status_size, "timed out after %s and was killed",
                 zdm_format_duration(timeout_ms, d, sizeof d));
        return -1;
    }
    if (WIFEXITED(ws)) {
        snprintf(status, status_size, "exit status %d", WEXITSTATUS(ws));
        return WEXITSTATUS(ws) == 0 ? 0 : -1;
    }
    if (WIFSIGNALED(ws)) {
        snprintf(status, status_size, "killed by signal %d", WTERMSIG(ws));
        return -1;
    }
    snprintf(status, status_size, "ended abnormally");
    return -1;
}

/* Runs one command; *status gets a description of how it ended. */
static int run_one(const zdm_plan *plan, const zdm_hook_cmd *cmd, zdm_hook_event ev,
                   const zdm_hook_env *env, int64_t timeout_ms, tail_ring *ring, char *status,
                   size_t status_size)
{
    hook_run h;
    memset(&h, 0, sizeof h);
    if (spawn(plan, cmd, ev, env, &h, status, status_size) != 0)
        return -1;
    h.plan_id = plan->id;
    h.ring = ring;
    h.out_open = 1;
    snprintf(h.tag, sizeof h.tag, "hook %s[%s]", zdm_hook_event_name(ev), cmd->argv.v[0]);
    /* The hook is done when its own process is: a child it left behind
     * may hold the output open for ever (a daemon, perhaps in a session of
     * its own), so the output is read only DRAIN_MS longer.  A hook that
     * closed its output still runs until it exits or times out. */
    h.deadline = zdm_mono_ms() + timeout_ms;
    for (;;) {
        int64_t now = zdm_mono_ms();
        if (!h.reaped) {
            pid_t w = waitpid(h.pid, &h.wstatus, WNOHANG);
            if (w == h.pid || (w < 0 && errno == ECHILD)) {
                h.reaped = 1;
                h.drain_until = now + DRAIN_MS;
            }
        }
        if (h.reaped && (!h.out_open || now >= h.drain_until))
            break;
        stop_when_due(&h, now);
        /* Wake up at least every POLL_MS to see whether the hook ended. */
        int64_t next = h.reaped ? h.drain_until : h.timed_out ? (h.kill_at ? h.kill_at : now + POLL_MS) : h.deadline;
        int64_t wait = next - now;
        wait = wait < 0 ? 0 : wait > POLL_MS ? POLL_MS : wait;
        if (!h.out_open) /* usually the hook is exiting: look again soon */
            poll(NULL, 0, (int)(wait > 10 ? 10 : wait));
        else
            read_output(&h, wait);
    }
    if (h.line.len) {
        char *line = printable_line(&h.line);
        zdm_log(ZDM_LOG_INFO, plan->id, h.tag, "  | %s", line);
        ring_push(ring, line);
        free(line);
    }
    zdm_buf_free(&h.line);
    close(h.fd);
    /* After a timeout, nothing the hook started may outlive it (the group
     * only: the hook's own pid is reaped and may be someone else's now). */
    if (h.timed_out)
        kill(-h.pid, SIGKILL);
    return end_status(&h, timeout_ms, status, status_size);
}

static void argv_text(const zdm_hook_cmd *cmd, char *out, size_t size)
{
    out[0] = '\0';
    for (size_t i = 0; i < cmd->argv.n; i++) {
        size_t len = strlen(out);
        snprintf(out + len, size - len, "%s%s", i ? " " : "", cmd->argv.v[i]);
    }
}

int zdm_hooks_run(const zdm_project *proj, const zdm_plan *plan, zdm_hook_event ev,
                  const zdm_hook_env *env, int *ran, zdm_buf *tail, zdm_err *err)
{
    *ran = 0;
    const zdm_hooks *sets[2] = {proj && plan->hooks.inherit ? &proj->hooks : NULL, &plan->hooks};
    for (int s = 0; s < 2; s++) {
        if (!sets[s])
            continue;
        /* The plan's timeout applies to its own hooks, the project's to its. */
        int64_t timeout = sets[s]->timeout_ms > 0 ? sets[s]->timeout_ms : 300000;
        for (size_t i = 0; i < sets[s]->n[ev]; i++) {
            const zdm_hook_cmd *cmd = &sets[s]->cmds[ev][i];
            char text[512], status[160];
            argv_text(cmd, text, sizeof text);
            if (zdm_sig_caught())
                return zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "%s hook \"%s\" not started: zdm got signal %d",
                                   zdm_hook_event_name(ev), text, zdm_sig_first());
            zdm_log(ZDM_LOG_INFO, plan->id, zdm_hook_event_name(ev), "running hook: %s", text);
            tail_ring ring;
            memset(&ring, 0, sizeof ring);
            int64_t t0 = zdm_mono_ms();
            int rc = run_one(plan, cmd, ev, env, timeout, &ring, status, sizeof status);
            (*ran)++;
            if (tail) {
                zdm_buf_printf(tail, "$ %s (%s)\n", text, status);
                ring_dump(&ring, tail);
            }
            char d[32];
            if (rc == 0) {
                zdm_log(ZDM_LOG_INFO, plan->id, zdm_hook_event_name(ev), "hook %s succeeded in %s", text,
                        zdm_format_duration(zdm_mono_ms() - t0, d, sizeof d));
                ring_free(&ring);
                continue;
            }
            zdm_buf last = {0};
            ring_dump(&ring, &last);
            ring_free(&ring);
            if (rc == -2) {
                zdm_buf_free(&last);
                zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "%s hook \"%s\" %s", zdm_hook_event_name(ev), text,
                            status);
                return ZDM_EXIT_INTERRUPTED;
            }
            zdm_err_set(err, ZDM_EXIT_FAIL, "%s hook \"%s\" failed: %s%s%s", zdm_hook_event_name(ev), text,
                        status, last.len ? "; last output:\n" : " (no output)", last.len ? last.data : "");
            /* drop the trailing newline of the last line */
            size_t ml = strlen(err->msg);
            if (ml && err->msg[ml - 1] == '\n')
                err->msg[ml - 1] = '\0';
            zdm_buf_free(&last);
            return ZDM_EXIT_FAIL;
        }
    }
    return 0;
}
