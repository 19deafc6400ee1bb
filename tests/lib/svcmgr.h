/* SPDX-License-Identifier: GPL-2.0-only */
/* The service manager's side of sd_notify(3) and of systemd's file descriptor store, for tests. */
#ifndef VBLKD_TEST_SVCMGR_H
#define VBLKD_TEST_SVCMGR_H

#include <pthread.h>
#include <stdbool.h>

/*
 * What systemd does for a Type=notify unit with FileDescriptorStoreMax=
 * (systemd.service(5), sd_notify(3), sd_listen_fds(3)), as far as vblkd
 * uses it: a datagram socket named by $NOTIFY_SOCKET; "FDSTORE=1" with
 * descriptors attached (SCM_RIGHTS) keeps them under "FDNAME=" (default
 * "stored"), "FDSTOREREMOVE=1" drops every one of that name; the next
 * start of the service gets them back from descriptor 3 on, with
 * LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES.  The store outlives the
 * process, a kill -9 included, as systemd keeps it across a restart.
 * Plain C and libc only: tests/xen/notify-run.c uses it in the check-xen
 * Dom0 too.
 */

#define SVCMGR_MAX_FDS 256
#define SVCMGR_QUEUE 256

struct svcmgr_fd {
	int fd;
	char name[256];
};

struct svcmgr {
	int sock;		/* -1 while not listening */
	bool fdstore;		/* false: as FileDescriptorStoreMax=0, what is sent is closed */
	unsigned int nfds;
	struct svcmgr_fd fds[SVCMGR_MAX_FDS];
	unsigned int stored, removed;	/* FDSTORE=1 and FDSTOREREMOVE=1 messages seen */
	char msg[4096];		/* receive()'s buffer */
	char out[4096];		/* what svcmgr_recv() returned, with a reader thread */
	/* With a reader thread (svcmgr_listen_reader()): the texts it received, oldest first. */
	bool threaded, busy, stop;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char *queue[SVCMGR_QUEUE];
	unsigned int qhead, qlen;
};

void svcmgr_init(struct svcmgr *m, bool fdstore);
/*
 * A new socket at @path (an old one there is unlinked first; one listened on
 * before is closed, the texts it received dropped; the store stays).
 */
int svcmgr_listen(struct svcmgr *m, const char *path);
/*
 * The same, and a thread that reads it all the time, as systemd does: a
 * sender never finds the queue full (net.unix.max_dgram_qlen may be 10).
 * svcmgr_recv() then returns what the thread received.
 */
int svcmgr_listen_reader(struct svcmgr *m, const char *path);
/* Under the lock: stored descriptors, FDSTORE=1 and FDSTOREREMOVE=1 messages seen. */
void svcmgr_stats(struct svcmgr *m, unsigned int *ret_nfds, unsigned int *ret_stored,
		  unsigned int *ret_removed);
/* Stop listening, after handling what is queued; the store stays. */
void svcmgr_unlisten(struct svcmgr *m);
/*
 * The next datagram within @timeout_ms (-1: wait, 0: only what is queued):
 * its text, the store updated; NULL on timeout or error.
 */
const char *svcmgr_recv(struct svcmgr *m, int timeout_ms);
/*
 * Every datagram already queued, handled; how many (without a reader
 * thread; with one, it waits until the thread has handled what is queued,
 * and its texts stay for svcmgr_recv()).
 */
unsigned int svcmgr_drain(struct svcmgr *m);
/* How many stored descriptors have a name beginning with @prefix. */
unsigned int svcmgr_count(struct svcmgr *m, const char *prefix);
/*
 * In the child, between fork() and exec(): NOTIFY_SOCKET=@path, and the
 * stored descriptors at 3, 4, ... with LISTEN_PID, LISTEN_FDS and
 * LISTEN_FDNAMES.  -errno on failure.
 */
int svcmgr_child(struct svcmgr *m, const char *path);
/* The socket and every stored descriptor. */
void svcmgr_close(struct svcmgr *m);

#endif
