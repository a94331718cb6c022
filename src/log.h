/*
 * log.h -- operator log lines on stderr:
 *   2026-11-21T23:40:00Z zdm[1234] 0002_event_type expand: step 2/3 done in 12 ms
 * Level filtering follows -v / -q.  Callers never print secrets: URLs go
 * through zdm_db_safe_url() first.
 */
#ifndef ZDM_LOG_H
#define ZDM_LOG_H

#include <stdio.h>

#include "err.h"

typedef enum zdm_log_level { ZDM_LOG_DEBUG = 0, ZDM_LOG_INFO = 1, ZDM_LOG_WARN = 2, ZDM_LOG_ERROR = 3 } zdm_log_level;

void zdm_log_set_level(zdm_log_level min);
zdm_log_level zdm_log_get_level(void);
void zdm_log_set_stream(FILE *f); /* default stderr */
FILE *zdm_log_stream(void);

/* plan and phase may be NULL. */
void zdm_log(zdm_log_level lvl, const char *plan, const char *phase, const char *fmt, ...)
    ZDM_PRINTF(4, 5);

#endif
