/* SPDX-License-Identifier: GPL-2.0-only */
/* `vblkd --status`: the daemon's JSON status document printed as a table for people. */
#ifndef VBLKD_STATUS_H
#define VBLKD_STATUS_H

#include <stdio.h>

/* Print @json (the daemon's answer to "status") as a table; -EINVAL if it is not such a document. */
int status_print_table(FILE *out, const char *json);

/* "1h02m03s", "4.7 MiB": the units the table uses. */
void status_format_duration(unsigned long long seconds, char *buf, size_t len);
void status_format_bytes(unsigned long long bytes, char *buf, size_t len);
/* "180us", "2.1ms", "1.3s": a latency given in microseconds. */
void status_format_latency(unsigned long long us, char *buf, size_t len);

#endif
