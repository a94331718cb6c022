/*
 * log.h -- zdm's output layer: operator log lines on stderr, the --json
 * event stream on stdout, and the progress bar.
 *
 * Log lines: one line per event with time, level, pid, plan, phase and
 * message, in one of three forms (--log-format, or $ZDM_LOG_FORMAT):
 *   text  2026-11-21T23:40:00Z zdm[1234] 0002_event_type expand: step 2/3 done
 *         (warnings and errors tagged "warning: " / "error: " after the plan)
 *   kv    time=2026-11-21T23:40:00Z level=info pid=1234 plan=0002_event_type phase=expand msg="step 2/3 done"
 *   json  {"time":"...","level":"info","pid":1234,"plan":"...","phase":"...","message":"..."}
 * Under systemd (stderr is the journal stream named by $JOURNAL_STREAM)
 * each line starts with its syslog priority, <7> debug, <6> info,
 * <4> warning, <3> error, which journald strips and records as PRIORITY.
 * Level filtering follows -v / -q.  Callers never print secrets: URLs go
 * through zdm_db_safe_url() first.
 *
 * --json event stream (zdm_log_set_events): every log event at or above
 * the level is also written to stdout as one JSON object per line,
 *   {"event":"log","time":...,"level":...,"plan":...,"phase":...,"message":...}
 * so a script reads the whole run from stdout alone.
 *
 * Progress bar: on a terminal the bar owns the last line: log lines are
 * printed above it (the bar is cleared, the line written, the bar drawn
 * again), and zdm_progress_end() clears it for good.
 *
 * Owns: the format of every line zdm writes to stderr, and turning a
 * command's text output into JSON events (zdm_json_out_open).
 */
#ifndef ZDM_LOG_H
#define ZDM_LOG_H

#include <jansson.h>
#include <stdio.h>

#include "err.h"

typedef enum zdm_log_level { ZDM_LOG_DEBUG = 0, ZDM_LOG_INFO = 1, ZDM_LOG_WARN = 2, ZDM_LOG_ERROR = 3 } zdm_log_level;
typedef enum zdm_log_format { ZDM_LOGF_TEXT = 0, ZDM_LOGF_KV = 1, ZDM_LOGF_JSON = 2 } zdm_log_format;

void zdm_log_set_level(zdm_log_level min);
zdm_log_level zdm_log_get_level(void);
void zdm_log_set_stream(FILE *f); /* default stderr */
FILE *zdm_log_stream(void);
void zdm_log_set_format(zdm_log_format f);
zdm_log_format zdm_log_get_format(void);
/* "text", "kv" (also "logfmt", "key=value") or "json"; -1 when unknown. */
int zdm_log_parse_format(const char *s);
/* --json: also write each event to f as a JSON line (NULL: off). */
void zdm_log_set_events(FILE *f);
/* zdm backfill --workers N: each worker process names itself ("2/4") on
 * every line it writes: text "PLAN PHASE: worker 2/4: message", kv
 * worker=2/4, json and --json events "worker": "2/4".  NULL or "" (the
 * default, and a single worker): no such field, lines as before. */
void zdm_log_set_worker(const char *tag);
const char *zdm_log_worker(void); /* "" when not set */
/* The syslog priority prefix: 1 on, 0 off, -1 (default) when stderr is
 * $JOURNAL_STREAM. */
void zdm_log_set_journal(int on);

/* plan and phase may be NULL. */
void zdm_log(zdm_log_level lvl, const char *plan, const char *phase, const char *fmt, ...)
    ZDM_PRINTF(4, 5);

/* Writes one JSON event line {"event": EVENT, "time": ..., "plan": ...,
 * "phase": ..., and the members of `fields`} to the event stream when
 * there is one.  Takes fields (may be NULL). */
void zdm_log_event(const char *event, const char *plan, const char *phase, json_t *fields);
/* 1 when --json events are on. */
int zdm_log_events_on(void);

/* A command's final error on f, in the log format: text keeps the
 * two-line "zdm: MESSAGE" / "  -> DETAIL" form; kv and json make it one
 * line with level error and a detail field. */
void zdm_log_final_error(FILE *f, const zdm_err *err);

/* Progress bar on the log stream (callers decide whether it is a tty). */
void zdm_progress_show(const char *line);
void zdm_progress_end(void);

/* A stream for a command's results under --json: a JSON document written
 * to it passes through as it is; any other line becomes
 * {"event":"output","message":LINE}.  Closing it (fclose) flushes. */
FILE *zdm_json_out_open(FILE *real);

#endif
