/* SPDX-License-Identifier: GPL-2.0-only */
/* vhost-user-blk: a virtio-blk device served to a vhost-user front end (QEMU) over a UNIX socket. */
#ifndef VBLKD_VHOST_H
#define VBLKD_VHOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "blk.h"
#include "vblk.h"

struct loop;

/* ---- one export: a socket, a backing file, at most one front end at a time ---- */

struct vhost_export_cfg {
	char *socket;			/* the UNIX socket we listen on */
	char *path;			/* backing file or block device */
	bool read_only;
	bool direct;			/* O_DIRECT, past the page cache (refused where the file system cannot) */
	unsigned int queues;		/* 1..VBLK_MAX_QUEUES (0: the daemon's --queues) */
};

/*
 * "SOCKET,path=PATH[,ro][,direct][,queues=N]" (--vhost-user=): 0, or -EINVAL with a
 * phrase in *@ret_why.  The strings are malloc'ed (vhost_export_cfg_clear()).
 */
int vhost_export_cfg_parse(const char *arg, struct vhost_export_cfg *ret_cfg, const char **ret_why);
void vhost_export_cfg_clear(struct vhost_export_cfg *cfg);

struct vhost_export;

struct vhost_export_opts {
	enum blk_engine engine;
	unsigned int queue_depth;	/* 0: the block layer's default */
	/* The loop busy-polls (--poll-us): it looks at the front end's rings too (loop_add_poll()). */
	bool busy_poll;
};

/* Open the backing file and listen on the socket (a stale socket file is replaced).  Errors are logged. */
int vhost_export_new(struct loop *loop, const struct vhost_export_cfg *cfg,
		     const struct vhost_export_opts *opts, struct vhost_export **ret_export);
/* Drop the front end, wait for the requests in flight, close everything, remove the socket.  Accepts NULL. */
void vhost_export_free(struct vhost_export *e);

struct vhost_export_info {
	const char *socket;
	const char *path;
	bool read_only;
	unsigned int queues;
	const char *state;		/* "listening", "connected", "running", "closing" */
	uint64_t connections;		/* front ends accepted since start */
	uint64_t resubmitted;		/* requests taken again from an inflight region */
	uint64_t capacity;
	enum blk_engine engine;
	bool direct;			/* the file opened with O_DIRECT (,direct) */
	uint64_t features;		/* negotiated virtio features of the running device */
	unsigned int in_flight;
	uint64_t uptime_seconds;
	struct vblk_stats stats;	/* all connections together */
};
void vhost_export_get_info(const struct vhost_export *e, struct vhost_export_info *ret_info);

/* ---- one front end's connection (the export's; tests and the fuzzer drive it directly) ---- */

struct vhost_conn;

struct vhost_conn_params {
	const char *name;		/* log prefix, e.g. "vhost /run/vblkd/disk0.sock" */
	struct loop *loop;		/* kick eventfds are watched there */
	struct blk_info info;
	unsigned int num_queues;
	const struct vblk_backend_ops *be_ops;
	void *be;
};

int vhost_conn_new(const struct vhost_conn_params *p, struct vhost_conn **ret_conn);

/*
 * One message (@len bytes: header and payload) with the @nfds fds that came
 * with it.  Returns:
 *   0            handled; when *@ret_reply_len > 0, send @reply (room for
 *                struct vhost_user_msg) with *@ret_reply_fd if it is >= 0 (the
 *                connection's own fd: do not close it)
 *   -EINPROGRESS the device must finish its requests in flight first: call
 *                again with the same message and fds once vhost_conn_quiet()
 *   -errno       the message is refused (logged, naming it): drop the front end
 * The fds are the connection's unless -EINPROGRESS is returned.
 */
int vhost_conn_handle(struct vhost_conn *c, const void *msg, size_t len, int *fds,
		      unsigned int nfds, void *reply, size_t *ret_reply_len, int *ret_reply_fd);

/* The backend finished a batch of requests: publish them, keep the inflight region, signal the guest. */
void vhost_conn_complete(struct vhost_conn *c);
/* The device's poll timer (its backend's set_timer()) fired. */
void vhost_conn_timer(struct vhost_conn *c);
/*
 * The loop's busy polling (loop_add_poll()'s phases, as vblk_busy_poll_begin()
 * and friends): from begin to end the front end is asked not to kick, and
 * vhost_conn_busy_poll() takes what it adds (true when it took something);
 * end asks for kicks again, taking (true) what came meanwhile.  Nothing is
 * polled while the device does not run or waits to stop.
 */
void vhost_conn_busy_poll_begin(struct vhost_conn *c);
bool vhost_conn_busy_poll(struct vhost_conn *c);
bool vhost_conn_busy_poll_end(struct vhost_conn *c);
/* A message waits (-EINPROGRESS) and the device has nothing in flight any more. */
bool vhost_conn_quiet(const struct vhost_conn *c);
bool vhost_conn_running(const struct vhost_conn *c);
uint64_t vhost_conn_features(const struct vhost_conn *c);
uint64_t vhost_conn_resubmitted(const struct vhost_conn *c);
void vhost_conn_get_stats(const struct vhost_conn *c, struct vblk_stats *ret_stats);

/*
 * The front end is gone: the device goes (requests in flight are orphaned
 * and only finish), the kick and call fds are closed.  Guest memory stays
 * mapped until vhost_conn_free(), which the caller calls once the backend has
 * nothing in flight.  Both accept NULL.
 */
void vhost_conn_close(struct vhost_conn *c);
void vhost_conn_free(struct vhost_conn *c);

#endif
