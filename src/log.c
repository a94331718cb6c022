/*
 * log.c -- see log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <unistd.h>

#include "util.h"

static zdm_log_level min_level = ZDM_LOG_INFO;
static FILE *stream;

void zdm_log_set_level(zdm_log_level min) { min_level = min; }
zdm_log_level zdm_log_get_level(void) { return min_level; }
void zdm_log_set_stream(FILE *f) { stream = f; }
FILE *zdm_log_stream(void) { return stream ? stream : stderr; }

void zdm_log(zdm_log_level lvl, const char *plan, const char *phase, const char *fmt, ...)
{
    if (lvl < min_level)
        return;
    static const char *const tags[] = {"debug: ", "", "warning: ", "error: "};
    char ts[40];
    zdm_format_time(zdm_now_ms(), ts, sizeof ts);
    zdm_buf b = {0};
    zdm_buf_printf(&b, "%s zdm[%d] ", ts, (int)getpid());
    if (plan)
        zdm_buf_printf(&b, "%s%s%s: ", plan, phase ? " " : "", phase ? phase : "");
    zdm_buf_puts(&b, tags[lvl]);
    va_list ap;
    va_start(ap, fmt);
    zdm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    zdm_buf_puts(&b, "\n");
    FILE *f = zdm_log_stream();
    fputs(b.data, f);
    fflush(f);
    zdm_buf_free(&b);
}
