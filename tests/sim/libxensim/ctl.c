// SPDX-License-Identifier: GPL-2.0-only
/* The simulator's control API (xensim.h): spawning xensim and driving guests from tests. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../xensim.h"
#include "client.h"

struct xensim {
	struct xsim_conn *conn;
};

int xensim_spawn(const char *bin, const char *const *args, struct xensim_proc *ret_proc)
{
	struct xensim_proc p;
	const char *argv[64];
	char fdbuf[16], c;
	unsigned int n = 0, i;
	int pfd[2], r;
	ssize_t got;

	memset(&p, 0, sizeof(p));
	snprintf(p.dir, sizeof(p.dir), "/tmp/xensim.XXXXXX");
	if (!mkdtemp(p.dir))
		return -errno;
	snprintf(p.socket, sizeof(p.socket), "%s/sock", p.dir);
	if (pipe(pfd) < 0) {
		r = -errno;
		goto err_dir;
	}
	snprintf(fdbuf, sizeof(fdbuf), "%d", pfd[1]);
	argv[n++] = bin;
	argv[n++] = "--socket";
	argv[n++] = p.socket;
	argv[n++] = "--serve";
	argv[n++] = "--ready-fd";
	argv[n++] = fdbuf;
	for (i = 0; args && args[i] && n < 63; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	p.pid = fork();
	if (p.pid < 0) {
		r = -errno;
		goto err_pipe;
	}
	if (p.pid == 0) {
		close(pfd[0]);
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	/* The simulator writes one byte once it listens; EOF means it died. */
	do {
		got = read(pfd[0], &c, 1);
	} while (got < 0 && errno == EINTR);
	close(pfd[0]);
	if (got != 1) {
		waitpid(p.pid, NULL, 0);
		r = -ECHILD;
		goto err_dir;
	}
	setenv("XENSIM_SOCKET", p.socket, 1);
	*ret_proc = p;
	return 0;

err_pipe:
	close(pfd[0]);
	close(pfd[1]);
err_dir:
	rmdir(p.dir);
	return r;
}

int xensim_reap(struct xensim_proc *proc)
{
	int status;

	if (proc->pid <= 0)
		return -ECHILD;
	kill(proc->pid, SIGTERM);
	while (waitpid(proc->pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	proc->pid = 0;
	unlink(proc->socket);
	rmdir(proc->dir);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int xensim_connect(struct xensim **ret_sim)
{
	struct xensim *s = calloc(1, sizeof(*s));
	int r;

	if (!s)
		return -ENOMEM;
	r = xsim_conn_open(XSIM_CONN_GENERIC, 0, NULL, &s->conn);
	if (r < 0) {
		free(s);
		return r;
	}
	*ret_sim = s;
	return 0;
}

void xensim_disconnect(struct xensim *sim)
{
	if (!sim)
		return;
	xsim_conn_close(sim->conn);
	free(sim);
}

int xensim_domain_create(struct xensim *sim, const char *spec, unsigned int flags,
			 uint32_t *ret_domid, uint64_t *ret_wait_us)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_CREATE, .a = flags };
	int r = xsim_call(sim->conn, &m, spec, strlen(spec) + 1, NULL, NULL, 0);

	if (r < 0)
		return r;
	*ret_domid = m.domid;
	if (ret_wait_us)
		*ret_wait_us = m.a;
	return 0;
}

int xensim_domain_destroy(struct xensim *sim, uint32_t domid, bool graceful,
			  uint64_t *ret_wait_us)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_DESTROY, .domid = domid, .a = graceful };
	int r = xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);

	if (ret_wait_us && (r == 0 || r == -ETIMEDOUT))
		*ret_wait_us = m.a;
	return r;
}

int xensim_guest_mmio(struct xensim *sim, uint32_t domid, unsigned int vcpu, uint64_t addr,
		      unsigned int size, bool write, uint64_t *data)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_MMIO, .domid = domid, .a = vcpu, .b = addr,
			      .c = size | (write ? 0x100u : 0), .d = *data };
	int r = xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);

	if (r == 0 && !write)
		*data = m.d;
	return r;
}

int xensim_guest_ioreq(struct xensim *sim, uint32_t domid, unsigned int vcpu,
		       const struct xsim_ioreq *req, uint64_t *ret_data)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_IOREQ, .domid = domid, .a = vcpu };
	int r = xsim_call(sim->conn, &m, req, sizeof(*req), NULL, NULL, 0);

	if (r == 0 && ret_data)
		*ret_data = m.d;
	return r;
}

int xensim_guest_write(struct xensim *sim, uint32_t domid, uint64_t gpa, const void *buf,
		       size_t len)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_MEM, .domid = domid, .a = gpa, .b = len, .c = 1 };

	return xsim_call(sim->conn, &m, buf, len, NULL, NULL, 0);
}

int xensim_guest_read(struct xensim *sim, uint32_t domid, uint64_t gpa, void *buf, size_t len)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_MEM, .domid = domid, .a = gpa, .b = len, .c = 0 };
	char *rt = NULL;
	int r;

	r = xsim_call(sim->conn, &m, NULL, 0, &rt, NULL, 0);
	if (r == 0) {
		if (m.n != len)
			r = -EPROTO;
		else
			memcpy(buf, rt, len);
	}
	free(rt);
	return r;
}

int xensim_guest_notify(struct xensim *sim, uint32_t domid, uint32_t port)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_NOTIFY, .domid = domid, .a = port };

	return xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);
}

int xensim_guest_wait_event(struct xensim *sim, uint32_t domid, uint32_t port,
			    unsigned int timeout_ms)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_WAIT_EVENT, .domid = domid, .a = port,
			      .b = timeout_ms };

	return xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);
}

int xensim_irq_count(struct xensim *sim, uint32_t domid, unsigned int irq, uint64_t *ret_count)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_IRQS, .domid = domid, .a = irq };
	int r = xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);

	if (r == 0)
		*ret_count = m.a;
	return r;
}

int xensim_notifies(struct xensim *sim, uint32_t domid, uint64_t *ret_kernel,
		    uint64_t *ret_backend, uint64_t *ret_irqfd)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_NOTIFIES, .domid = domid };
	int r = xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);

	if (r == 0) {
		*ret_kernel = m.a;
		*ret_backend = m.b;
		*ret_irqfd = m.c;
	}
	return r;
}

int xensim_grant(struct xensim *sim, uint32_t domid, uint64_t gfn, bool readonly,
		 uint32_t *ret_ref)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_GRANT, .domid = domid, .a = gfn, .b = readonly };
	int r = xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);

	if (r == 0)
		*ret_ref = m.id;
	return r;
}

int xensim_stats(struct xensim *sim, struct xsim_stats *ret_stats)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_STATS };
	char *rt = NULL;
	int r = xsim_call(sim->conn, &m, NULL, 0, &rt, NULL, 0);

	if (r == 0 && m.n != sizeof(*ret_stats))
		r = -EPROTO;
	if (r == 0)
		memcpy(ret_stats, rt, sizeof(*ret_stats));
	free(rt);
	return r;
}

int xensim_workload(struct xensim *sim, uint32_t domid, const char *spec, char **ret_report)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_WORKLOAD, .domid = domid };
	char *rt = NULL;
	int r = xsim_call(sim->conn, &m, spec, strlen(spec) + 1, &rt, NULL, 0);

	if (ret_report)
		*ret_report = rt;
	else
		free(rt);
	return r;
}

int xensim_progress(struct xensim *sim, uint32_t domid, uint64_t *ret_completions,
		    uint64_t *ret_last_ns, enum xsim_phase *ret_phase)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_PROGRESS, .domid = domid };
	int r = xsim_call(sim->conn, &m, NULL, 0, NULL, NULL, 0);

	if (r < 0)
		return r;
	*ret_completions = m.a;
	*ret_last_ns = m.b;
	*ret_phase = (enum xsim_phase)m.c;
	return 0;
}

int xensim_gaps(struct xensim *sim, uint64_t since_ns, struct xsim_gap **ret_gaps, size_t *ret_n)
{
	struct xsim_msg m = { .op = XSIM_OP_CTL_GAPS, .a = since_ns };
	char *rt = NULL;
	int r = xsim_call(sim->conn, &m, NULL, 0, &rt, NULL, 0);

	if (r == 0 && m.n % sizeof(struct xsim_gap))
		r = -EPROTO;
	if (r < 0) {
		free(rt);
		return r;
	}
	*ret_gaps = (struct xsim_gap *)rt;
	*ret_n = m.n / sizeof(struct xsim_gap);
	return 0;
}
