/*
 * backup.c -- the SQLite backup taken before contract.
 *
 * Contract removes structure for good; on the embedded default a copy of
 * the file is cheap insurance.
 *
 * Owns: copying the live database (sqlite3 backup API) within a deadline
 * and under signals, placing the copy safely beside the database, and
 * keeping the last `backup_keep` copies of each plan.
 *
 * Why it is built this way (each seen on a real database):
 *  - the backup API restarts whenever another connection writes between
 *    two steps, so under steady writes a plain copy never finishes.  The
 *    copy runs inside one read transaction of zdm's connection instead, so
 *    it reads one snapshot and never restarts (WAL: writers go on
 *    meanwhile; rollback journal: their commits wait for the copy, which
 *    is why it copies in large steps).  tests/bench/sqlite_backup.py
 *    measures the three ways.
 *  - WAL: the copy goes to disk as it is written, in paced 1 MiB steps
 *    (BACKUP_STEP_PAGES_WAL); written whole and synced at the end, it
 *    delayed the application's commits by 20-30 ms.  The copy is synced,
 *    then its directory, before contract changes anything.
 *  - a signal (or the deadline) ends the copy between steps, removes it,
 *    and exits 4 (1): SIGTERM must not leave a partial copy and its
 *    journal behind.
 *  - the path comes from sqlite3_db_filename(), not from the URL (file:
 *    URIs carry a query), with sub-second resolution so a failed retry
 *    never deletes the previous good backup.  The copy is written in a
 *    private 0700 directory created beside the database, with the
 *    database's permission bits (a 0600 database gets a 0600 copy), then
 *    hard-linked to its final name, which never replaces an existing file
 *    (a clash takes the next name) and follows no planted symlink.  A
 *    failure only ever removes the private directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dialect.h"
#include "log.h"
#include "phase.h"
#include "util.h"

/* Rollback journal: 1024 pages (4 MiB at the default page size) per step:
 * the application's commits wait for the whole copy there, so it runs
 * flat out, in steps short enough to notice a signal or the deadline.
 * WAL: 256 pages (1 MiB), each flushed to disk by zdm and followed by a
 * pause as long as the step took.  Left to the end, the copy's dirty
 * pages (36 MiB for a 500,000-row table) were written back while the
 * application's commits synced (ext4 writes other files' data with a
 * commit's journal): its writes waited 20-30 ms once per contract. */
#define BACKUP_STEP_PAGES 1024
#define BACKUP_STEP_PAGES_WAL 256
#define PROGRESS_EVERY_MS 5000
#define RENAME_NOREPLACE_FLAG 1 /* linux/fs.h RENAME_NOREPLACE */

static volatile sig_atomic_t backup_signal;

static void on_signal(int sig) { backup_signal = sig; }

/* "<db>.zdm-backup-<plan>-" */
static void name_prefix(const char *dbfile, const char *plan, char *out, size_t size)
{
    snprintf(out, size, "%s.zdm-backup-%s-", dbfile, plan);
}

/* A stamp zdm wrote after the prefix: 20261129T211522.123Z[-N]. */
static int is_stamp(const char *s)
{
    const char *f = "ddddddddTdddddd.dddZ";
    for (; *f; f++, s++) {
        if (*f == 'd' ? (*s < '0' || *s > '9') : *s != *f)
            return 0;
    }
    if (!*s)
        return 1;
    if (*s++ != '-' || !*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

static void stamp_now(char *out, size_t size)
{
    int64_t ms = zdm_now_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char ymd[32];
    strftime(ymd, sizeof ymd, "%Y%m%dT%H%M%S", &tm);
    snprintf(out, size, "%s.%03dZ", ymd, (int)(ms % 1000));
}

static void remove_private(const char *tmpdir)
{
    static const char *const files[] = {"copy", "copy-journal", "copy-wal", "copy-shm"};
    char p[PATH_MAX];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (snprintf(p, sizeof p, "%s/%s", tmpdir, files[i]) < (int)sizeof p)
            (void)unlink(p);
    }
    (void)rmdir(tmpdir);
}

/* Private directories of backups whose process is gone (kill -9, power
 * loss): "<dir>/.zdm-backup-tmp-<pid>-XXXXXX".  Another zdm's copy in
 * progress (its pid alive) is left alone. */
static void remove_stale(const char *dir, const char *plan)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    static const char pre[] = ".zdm-backup-tmp-";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, pre, sizeof pre - 1) != 0)
            continue;
        char *end = NULL;
        long pid = strtol(e->d_name + sizeof pre - 1, &end, 10);
        if (pid <= 0 || !end || *end != '-' || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s%s", dir, e->d_name) >= (int)sizeof p)
            continue;
        remove_private(p);
        zdm_log(ZDM_LOG_WARN, plan, "contract", "removed %s, left by a backup whose process (pid %ld) is gone", p,
                pid);
    }
    closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Keeps the newest `keep` backups of the plan (0: all).  Only regular
 * files with zdm's exact name pattern are candidates. */
static void retain(const char *dbfile, const char *plan, int keep)
{
    if (keep <= 0)
        return;
    char prefix[PATH_MAX];
    name_prefix(dbfile, plan, prefix, sizeof prefix);
    const char *slash = strrchr(prefix, '/');
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - prefix) : 1, slash ? prefix : ".");
    if (slash && slash == prefix)
        snprintf(dir, sizeof dir, "/");
    const char *base = slash ? slash + 1 : prefix;
    DIR *d = opendir(dir);
    if (!d)
        return;
    zdm_strv names = {0};
    struct dirent *e;
    size_t bl = strlen(base);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, base, bl) != 0 || !is_stamp(e->d_name + bl))
            continue;
        char p[PATH_MAX];
        struct stat st;
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p && lstat(p, &st) == 0 &&
            S_ISREG(st.st_mode))
            zdm_strv_push(&names, e->d_name);
    }
    closedir(d);
    if (names.n > (size_t)keep) {
        qsort(names.v, names.n, sizeof *names.v, cmp_str); /* the stamp sorts by time */
        for (size_t i = 0; i + (size_t)keep < names.n; i++) {
            char p[PATH_MAX];
            if (snprintf(p, sizeof p, "%s/%s", dir, names.v[i]) < (int)sizeof p && unlink(p) == 0)
                zdm_log(ZDM_LOG_INFO, plan, "contract", "removed the old backup %s (backup_keep = %d)", p, keep);
        }
    }
    zdm_strv_free(&names);
}

static int is_wal(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int wal = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA main.journal_mode", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *m = sqlite3_column_text(st, 0);
        wal = m && strcmp((const char *)m, "wal") == 0;
    }
    sqlite3_finalize(st);
    return wal;
}

/* Copies src's main database into the file dst_path inside one read
 * transaction of src.  Returns 0, ZDM_EXIT_INTERRUPTED or ZDM_EXIT_FAIL.
 * The copy is durable on return (fdatasync of dst_path). */
static int copy_db(zdm_run *r, sqlite3 *src, const char *dst_path, zdm_err *err)
{
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE, NULL);
    /* No journal and no syncs of SQLite's own for the copy: a copy that
     * fails is removed whole, and zdm syncs the file (below).  The copy
     * is one transaction of dst, written as its page cache spills: a
     * small cache, so that the pages a step copied are in the file when
     * zdm syncs it (with 2 MB, the last 500 pages came at the end). */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = 32",
                          NULL, NULL, NULL);
    int fd = rc == SQLITE_OK ? open(dst_path, O_RDWR | O_CLOEXEC) : -1;
    if (rc != SQLITE_OK || fd < 0) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "cannot open the backup file %s: %s", dst_path,
                    rc != SQLITE_OK ? (dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc)) : strerror(errno));
        sqlite3_close(dst);
        return ZDM_EXIT_FAIL;
    }
    int wal = is_wal(src);
    /* One snapshot for the whole copy: a write by another connection can
     * no longer restart it. */
    char *msg = NULL;
    rc = sqlite3_exec(src, "BEGIN; SELECT count(*) FROM sqlite_master", NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "cannot start reading the database for its backup: %s",
                    msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        (void)sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(dst);
        close(fd);
        return ZDM_EXIT_FAIL;
    }
    sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
    if (!b) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "cannot start the backup to %s: %s", dst_path, sqlite3_errmsg(dst));
        (void)sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(dst);
        close(fd);
        return ZDM_EXIT_FAIL;
    }
    int64_t t0 = zdm_mono_ms(), last = t0;
    int64_t deadline = r->plan->backup_timeout_ms > 0 ? t0 + r->plan->backup_timeout_ms : INT64_MAX;
    int status = 0;
    char d1[32];
    for (;;) {
        int64_t step0 = zdm_mono_us();
        rc = sqlite3_backup_step(b, wal ? BACKUP_STEP_PAGES_WAL : BACKUP_STEP_PAGES);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
            status = zdm_err_set(err, ZDM_EXIT_FAIL, "backup to %s failed: %s", dst_path, sqlite3_errstr(rc));
            break;
        }
        if (rc != SQLITE_OK) {
            sqlite3_sleep(10); /* the destination is ours: only the source can be busy */
        } else if (wal) {
            if (fdatasync(fd) != 0) {
                status = zdm_err_set(err, ZDM_EXIT_FAIL, "backup to %s failed: %s", dst_path, strerror(errno));
                break;
            }
            int64_t us = zdm_mono_us() - step0;
            struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};
            nanosleep(&ts, NULL); /* a signal cuts it short: seen below */
        }
        int64_t now = zdm_mono_ms();
        if (backup_signal) {
            status = zdm_err_set(err, ZDM_EXIT_INTERRUPTED, "backup interrupted by signal %d after %s",
                                 (int)backup_signal, zdm_format_duration(now - t0, d1, sizeof d1));
            break;
        }
        if (now >= deadline) {
            status = zdm_err_set(err, ZDM_EXIT_FAIL, "backup did not finish within backup_timeout (%s): %d of %d "
                                 "pages copied", zdm_format_duration(r->plan->backup_timeout_ms, d1, sizeof d1),
                                 sqlite3_backup_pagecount(b) - sqlite3_backup_remaining(b),
                                 sqlite3_backup_pagecount(b));
            break;
        }
        if (now - last >= PROGRESS_EVERY_MS) {
            int total = sqlite3_backup_pagecount(b), left = sqlite3_backup_remaining(b);
            zdm_log(ZDM_LOG_INFO, r->plan->id, "contract", "backup: %d%% (%d of %d pages) after %s",
                    total ? (int)(100LL * (total - left) / total) : 100, total - left, total,
                    zdm_format_duration(now - t0, d1, sizeof d1));
            last = now;
        }
    }
    int frc = sqlite3_backup_finish(b);
    (void)sqlite3_exec(src, "COMMIT", NULL, NULL, NULL); /* ends the read transaction */
    if (status == 0 && frc != SQLITE_OK)
        status = zdm_err_set(err, ZDM_EXIT_FAIL, "backup to %s failed: %s", dst_path, sqlite3_errmsg(dst));
    if (sqlite3_close(dst) != SQLITE_OK && status == 0)
        status = zdm_err_set(err, ZDM_EXIT_FAIL, "closing the backup %s failed", dst_path);
    if (status == 0 && fdatasync(fd) != 0)
        status = zdm_err_set(err, ZDM_EXIT_FAIL, "backup to %s failed: %s", dst_path, strerror(errno));
    close(fd);
    return status;
}

/* The backup's name is durable before contract changes anything. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* a file system that cannot sync a directory keeps the name as it can */
        close(fd);
    }
}

int zdm_backup_sqlite(zdm_run *r, zdm_err *err)
{
    r->backup_path[0] = '\0';
    if (!zdm_db_dialect(r->db)->file_backup || r->no_backup || r->dry_run)
        return 0;
    sqlite3 *src = (sqlite3 *)r->db->conn;
    /* The real file, whatever the URL looked like (file: URIs, queries). */
    const char *dbfile = sqlite3_db_filename(src, "main");
    struct stat st;
    if (!dbfile || !*dbfile || stat(dbfile, &st) != 0)
        return zdm_err_set(err, ZDM_EXIT_FAIL, "cannot find the database file to back up (%s)",
                           dbfile && *dbfile ? strerror(errno) : "no file name");
    const char *slash = strrchr(dbfile, '/');
    char dir[PATH_MAX], tmpdir[PATH_MAX];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - dbfile + 1) : 2, slash ? dbfile : "./");
    remove_stale(dir, r->plan->id);
    /* The pid in the name lets a later run remove what a killed one left. */
    if (snprintf(tmpdir, sizeof tmpdir, "%s.zdm-backup-tmp-%ld-XXXXXX", dir, (long)getpid()) >=
            (int)sizeof tmpdir ||
        !mkdtemp(tmpdir)) {
        zdm_err_set(err, ZDM_EXIT_FAIL, "cannot create a directory for the backup beside %s: %s", dbfile,
                    strerror(errno));
        zdm_err_detail(err, "free disk space or fix permissions beside the database, or pass --no-backup "
                            "if you have your own backup; nothing was changed");
        return ZDM_EXIT_FAIL;
    }
    char tmpfile[PATH_MAX];
    int fd = -1, rc = 0;
    if (snprintf(tmpfile, sizeof tmpfile, "%s/copy", tmpdir) < (int)sizeof tmpfile)
        fd = open(tmpfile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, st.st_mode & 0600);
    if (fd < 0 || fchmod(fd, st.st_mode & 07777 & ~(mode_t)S_ISUID & ~(mode_t)S_ISGID) != 0) {
        rc = zdm_err_set(err, ZDM_EXIT_FAIL, "cannot create the backup file %s: %s", tmpfile, strerror(errno));
    }
    if (fd >= 0)
        close(fd);

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    backup_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int64_t t0 = zdm_mono_ms();
    if (rc == 0)
        rc = copy_db(r, src, tmpfile, err);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);

    /* Into place: link() never replaces an existing name (not even a
     * symlink planted there); a clash takes the next suffix. */
    char prefix[PATH_MAX], stamp[40];
    name_prefix(dbfile, r->plan->id, prefix, sizeof prefix);
    stamp_now(stamp, sizeof stamp);
    for (int n = 1; rc == 0; n++) {
        int len = n == 1 ? snprintf(r->backup_path, sizeof r->backup_path, "%s%s", prefix, stamp)
                         : snprintf(r->backup_path, sizeof r->backup_path, "%s%s-%d", prefix, stamp, n);
        if (len >= (int)sizeof r->backup_path) {
            rc = zdm_err_set(err, ZDM_EXIT_FAIL, "the backup's name beside %s is too long", dbfile);
            break;
        }
        if (link(tmpfile, r->backup_path) == 0)
            break;
        /* A file system without hard links (vfat, some network mounts):
         * a rename that refuses to replace does the same. */
#ifdef SYS_renameat2
        if ((errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS) &&
            syscall(SYS_renameat2, AT_FDCWD, tmpfile, AT_FDCWD, r->backup_path, RENAME_NOREPLACE_FLAG) == 0)
            break;
#endif
        if (errno != EEXIST || n >= 1000) {
            rc = zdm_err_set(err, ZDM_EXIT_FAIL, "cannot name the backup %s: %s", r->backup_path, strerror(errno));
            break;
        }
    }
    remove_private(tmpdir);
    if (rc == 0)
        sync_dir(dir);
    if (rc != 0) {
        r->backup_path[0] = '\0';
        if (rc == ZDM_EXIT_INTERRUPTED)
            zdm_err_detail(err, "the partial backup was removed and nothing was changed; run \"zdm advance %s\" "
                                "again to contract", r->plan->id);
        else
            zdm_err_detail(err, "the partial backup was removed and nothing was changed (earlier backups are "
                                "untouched); free disk space beside the database, raise backup_timeout, or pass "
                                "--no-backup if you have your own backup");
        return rc;
    }
    char d[32];
    zdm_log(ZDM_LOG_INFO, r->plan->id, "contract", "backup written to %s in %s", r->backup_path,
            zdm_format_duration(zdm_mono_ms() - t0, d, sizeof d));
    retain(dbfile, r->plan->id, r->plan->backup_keep);
    return 0;
}
