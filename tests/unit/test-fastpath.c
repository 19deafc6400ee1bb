// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the fast path's decisions: which kernel answers mean "fall back", what the kernel then owns. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "fastpath.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "xpriv.h"

#include "../lib/svcmgr.h"

/* A fake kernel at the xpriv seam: what each ioctl answers, and how often it was asked. */
static int ioeventfd_ret, irqfd_ret, deassign_ret;
static unsigned int ioeventfd_calls, irqfd_calls, deassigns;
static struct xpriv_ioeventfd last_deassign;
/* The service manager listening on $NOTIFY_SOCKET (tests of the fd store). */
static struct svcmgr mgr;
static char mgr_dir[64], mgr_path[128];
static unsigned int stored_at_assign;

int xpriv_open(struct xpriv **ret_xpriv)
{
	return -ENOENT;
}

void xpriv_close(struct xpriv *xpriv)
{
}

int xpriv_ioeventfd(struct xpriv *xpriv, const struct xpriv_ioeventfd *io, bool assign)
{
	if (!assign) {
		deassigns++;
		last_deassign = *io;
		return deassign_ret;
	}
	ioeventfd_calls++;
	assert_int_equal(io->size, 4);
	/* What the store holds when the kernel gets the eventfd. */
	svcmgr_drain(&mgr);
	stored_at_assign = svcmgr_count(&mgr, "vblkd-ioeventfd.");
	return ioeventfd_ret;
}

int xpriv_irqfd(struct xpriv *xpriv, unsigned int domid, unsigned int irq, int fd, bool assign)
{
	if (!assign) {
		deassigns++;
		return 0;
	}
	irqfd_calls++;
	return irqfd_ret;
}

static struct loop *L;
static struct xpriv *const X = (struct xpriv *)&L;	/* any non-NULL handle */
static uint32_t ports[2] = { 5, 6 };
static char page[4096];

static void nop_notify(void *data, unsigned int queue)
{
}

static int setup(void **state)
{
	ioeventfd_ret = irqfd_ret = deassign_ret = 0;
	ioeventfd_calls = irqfd_calls = deassigns = stored_at_assign = 0;
	memset(&last_deassign, 0, sizeof(last_deassign));
	svcmgr_init(&mgr, true);
	snprintf(mgr_dir, sizeof(mgr_dir), "/tmp/vblkd-fastpath.XXXXXX");
	assert_non_null(mkdtemp(mgr_dir));
	snprintf(mgr_path, sizeof(mgr_path), "%s/notify", mgr_dir);
	assert_int_equal(svcmgr_listen(&mgr, mgr_path), 0);
	setenv("NOTIFY_SOCKET", mgr_path, 1);
	L = loop_new();
	assert_non_null(L);
	log_set_level(LOG_LEVEL_ERR);
	return 0;
}

static int teardown(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	svcmgr_close(&mgr);
	unlink(mgr_path);
	rmdir(mgr_dir);
	loop_free(L);
	return 0;
}

static void test_classify_missing_ioctl_falls_back(void **state)
{
	assert_int_equal(fastpath_classify(0), FASTPATH_ON);
	assert_int_equal(fastpath_classify(-ENOTTY), FASTPATH_UNSUPPORTED);
	assert_int_equal(fastpath_classify(-EOPNOTSUPP), FASTPATH_UNSUPPORTED);
	assert_int_equal(fastpath_classify(-EINVAL), FASTPATH_UNSUPPORTED);
	assert_int_equal(fastpath_classify(-ENOENT), FASTPATH_UNSUPPORTED);
	assert_int_equal(fastpath_classify(-EBUSY), FASTPATH_FAILED);
	assert_int_equal(fastpath_classify(-EFAULT), FASTPATH_FAILED);
}

static void test_both_on_kernel_claims_registered_notifies_only(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;

	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, nop_notify, NULL, &w), 0);
	assert_int_equal(ioeventfd_calls, 2);	/* one per queue */
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_ON);
	assert_int_equal(fastpath_irq_state(fp), FASTPATH_ON);
	assert_true(fastpath_claims(fp, 0x2000050, 4, 1));
	assert_true(fastpath_claims(fp, 0x2000050, 4, 0x10000));	/* the kernel masks 0xffff */
	assert_false(fastpath_claims(fp, 0x2000050, 4, 2));		/* no such queue */
	assert_false(fastpath_claims(fp, 0x2000050, 2, 0));		/* size must match */
	assert_false(fastpath_claims(fp, 0x2000070, 4, 0));		/* another register */
	assert_false(fastpath_claims(fp, 0x2000250, 4, 0));		/* another window */
	assert_true(fastpath_window_raise(w));
	fastpath_free(fp);
	assert_int_equal(deassigns, 3);	/* the kernel keeps ioeventfds until told */
}

static unsigned int notified[4];

static void count_notify(void *data, unsigned int queue)
{
	notified[queue]++;
}

/*
 * A queue's eventfd handed to another thread's watch: the window's loop no
 * longer takes its notifications, which wait in the eventfd for the other
 * thread; the fd stays registered with the kernel until the window goes.  Not on the fast path, or no
 * such queue: -1.
 */
static void test_queue_handoff_window_loop_stops_watching(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;
	eventfd_t cnt;
	int fd;

	memset(notified, 0, sizeof(notified));
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, count_notify, NULL, &w), 0);
	fd = fastpath_window_queue_handoff(w, 1);
	assert_true(fd >= 0);
	assert_int_equal(fastpath_window_queue_handoff(w, 2), -1);
	assert_int_equal(eventfd_write(fd, 1), 0);	/* as the kernel's ioeventfd handler */
	assert_int_equal(loop_iterate(L, 0), 0);
	assert_int_equal(notified[1], 0);
	assert_int_equal(eventfd_read(fd, &cnt), 0);	/* the other thread's to take */
	assert_int_equal(cnt, 1);
	fastpath_free(fp);
	assert_int_equal(deassigns, 3);
	/* A window on the plain path has no eventfd to hand over. */
	ioeventfd_ret = -ENOTTY;
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, count_notify, NULL, &w), 0);
	assert_int_equal(fastpath_window_queue_handoff(w, 0), -1);
	fastpath_free(fp);
}

static void test_enotty_plain_path_not_asked_again(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w1, *w2;

	ioeventfd_ret = irqfd_ret = -ENOTTY;
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, nop_notify, NULL, &w1), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000200, 34, 2, nop_notify, NULL, &w2), 0);
	assert_int_equal(ioeventfd_calls, 1);
	assert_int_equal(irqfd_calls, 1);
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_UNSUPPORTED);
	assert_false(fastpath_claims(fp, 0x2000050, 4, 0));
	assert_false(fastpath_window_raise(w1));
	assert_non_null(strstr(fastpath_why(fp), "IOCTL_PRIVCMD_IOEVENTFD"));
	fastpath_free(fp);
	assert_int_equal(deassigns, 0);
}

static void test_irqfd_only_kernel_is_partial(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;

	/* Linux 6.6: IRQFD, no IOEVENTFD. */
	ioeventfd_ret = -ENOTTY;
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 1, nop_notify, NULL, &w), 0);
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_UNSUPPORTED);
	assert_int_equal(fastpath_irq_state(fp), FASTPATH_ON);
	assert_false(fastpath_window_notify_on(w));
	assert_true(fastpath_window_irq_on(w));
	fastpath_free(fp);
}

static void test_second_queue_refused_window_stays_plain(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;

	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	/* A refusal other than "no such ioctl": that window stays plain, the guest says "failed". */
	ioeventfd_ret = -EBUSY;
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000200, 34, 2, nop_notify, NULL, &w), 0);
	assert_false(fastpath_window_notify_on(w));
	assert_false(fastpath_claims(fp, 0x2000250, 4, 0));
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_FAILED);
	fastpath_free(fp);
}

static void test_off_asks_nothing(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;

	assert_int_equal(fastpath_new(NULL, false, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, nop_notify, NULL, &w), 0);
	assert_int_equal(ioeventfd_calls + irqfd_calls, 0);
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_OFF);
	assert_non_null(strstr(fastpath_why(fp), "--no-fast-path"));
	fastpath_free(fp);
}

static void test_no_privcmd_device_unsupported(void **state)
{
	struct fastpath *fp;

	assert_int_equal(fastpath_new(NULL, true, -ENOENT, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_UNSUPPORTED);
	assert_int_equal(fastpath_irq_state(fp), FASTPATH_UNSUPPORTED);
	fastpath_free(fp);
}

/* Each ioeventfd is in the fd store before the kernel has it, and leaves it after DEASSIGN. */
static void test_ioeventfd_stored_before_assign_dropped_after(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;

	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, nop_notify, NULL, &w), 0);
	/* The second queue's assign saw both stored: the first's, and its own already. */
	assert_int_equal(stored_at_assign, 2);
	svcmgr_drain(&mgr);
	assert_int_equal(svcmgr_count(&mgr, "vblkd-ioeventfd.3."), 2);
	fastpath_free(fp);
	svcmgr_drain(&mgr);
	assert_int_equal(svcmgr_count(&mgr, "vblkd-ioeventfd."), 0);
	assert_int_equal(mgr.removed, 2);
}

/* An ASSIGN the kernel refused leaves nothing in the store. */
static void test_refused_assign_leaves_store_empty(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w;

	ioeventfd_ret = -EBUSY;
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 1, nop_notify, NULL, &w), 0);
	svcmgr_drain(&mgr);
	assert_int_equal(svcmgr_count(&mgr, "vblkd-ioeventfd."), 0);
	fastpath_free(fp);
}

/* The name round-trips what a successor's DEASSIGN needs. */
static void test_reclaim_deassigns_with_stored_fd(void **state)
{
	struct notify_fd fd = { .fd = eventfd(0, EFD_CLOEXEC),
				.name = "vblkd-ioeventfd.7.7f0012340000.2.2000200.1" };
	int keep = dup(fd.fd);

	assert_true(fd.fd >= 0 && keep >= 0);
	assert_int_equal(fastpath_reclaim(X, &fd, 1), 1);
	assert_int_equal(deassigns, 1);
	assert_int_equal(last_deassign.domid, 7);
	assert_ptr_equal(last_deassign.ioreq_page, (void *)(uintptr_t)0x7f0012340000ull);
	assert_int_equal(last_deassign.nr_vcpus, 2);
	assert_int_equal(last_deassign.base, 0x2000200);
	assert_int_equal(last_deassign.queue, 1);
	assert_int_equal(last_deassign.size, 4);
	/* Closed, and dropped from the store. */
	assert_true(fcntl(fd.fd, F_GETFD) < 0);
	svcmgr_drain(&mgr);
	assert_int_equal(mgr.removed, 1);
	close(keep);
}

/* The kernel has no such registration (the guest is gone): still closed and dropped. */
static void test_reclaim_nothing_registered_still_dropped(void **state)
{
	struct notify_fd fd = { .fd = eventfd(0, EFD_CLOEXEC),
				.name = "vblkd-ioeventfd.7.7f0012340000.2.2000200.1" };

	deassign_ret = -ENODEV;
	assert_int_equal(fastpath_reclaim(X, &fd, 1), 0);
	assert_int_equal(deassigns, 1);
	assert_true(fcntl(fd.fd, F_GETFD) < 0);
	svcmgr_drain(&mgr);
	assert_int_equal(mgr.removed, 1);
}

/* A descriptor vblkd did not store: no DEASSIGN, closed, dropped. */
static void test_reclaim_foreign_name_closed_not_deassigned(void **state)
{
	struct notify_fd fd = { .fd = eventfd(0, EFD_CLOEXEC), .name = "stored" };

	assert_int_equal(fastpath_reclaim(X, &fd, 1), 0);
	assert_int_equal(deassigns, 0);
	assert_true(fcntl(fd.fd, F_GETFD) < 0);
	svcmgr_drain(&mgr);
	assert_int_equal(mgr.removed, 1);
}

/* No privcmd (this vblkd cannot open it): nothing asked, the fd still closed. */
static void test_reclaim_without_privcmd_closes(void **state)
{
	struct notify_fd fd = { .fd = eventfd(0, EFD_CLOEXEC),
				.name = "vblkd-ioeventfd.7.7f0012340000.2.2000200.1" };

	assert_int_equal(fastpath_reclaim(NULL, &fd, 1), 0);
	assert_int_equal(deassigns, 0);
	assert_true(fcntl(fd.fd, F_GETFD) < 0);
}

static void expect_bad_name(const char *name)
{
	struct xpriv_ioeventfd io;

	assert_int_equal(fastpath_fd_name_parse(name, &io), -EINVAL);
}

static void test_fd_name_trailing_garbage_refused(void **state)
{
	expect_bad_name("vblkd-ioeventfd.7.7f0012340000.2.2000200.1x");
	expect_bad_name("vblkd-ioeventfd.7.7f0012340000.2.2000200.1.9");
}

static void test_fd_name_missing_fields_refused(void **state)
{
	expect_bad_name("vblkd-ioeventfd.");
	expect_bad_name("vblkd-ioeventfd.7.7f0012340000.2.2000200");
}

static void test_fd_name_reserved_domid_refused(void **state)
{
	expect_bad_name("vblkd-ioeventfd.32752.7f0012340000.2.2000200.1");
}

static void test_fd_name_zero_or_huge_vcpus_refused(void **state)
{
	expect_bad_name("vblkd-ioeventfd.7.7f0012340000.0.2000200.1");
	expect_bad_name("vblkd-ioeventfd.7.7f0012340000.4097.2000200.1");
}

static void test_fd_name_queue_over_16_bits_refused(void **state)
{
	expect_bad_name("vblkd-ioeventfd.7.7f0012340000.2.2000200.65536");
}

static void test_fd_name_null_page_refused(void **state)
{
	expect_bad_name("vblkd-ioeventfd.7.0.2.2000200.1");
}

static void test_fd_name_other_prefix_not_ours(void **state)
{
	struct xpriv_ioeventfd io;

	assert_int_equal(fastpath_fd_name_parse("vblkd-something.7", &io), -ENOENT);
	assert_int_equal(fastpath_fd_name_parse("", &io), -ENOENT);
}

/* No service manager: vblkd says once what a kill -9 would then cost, and goes on. */
static void test_no_manager_warns_once(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w1, *w2;
	char path[] = "/tmp/vblkd-fastpath-log.XXXXXX", buf[4096];
	int fd = mkstemp(path);
	ssize_t n;

	assert_true(fd >= 0);
	unsetenv("NOTIFY_SOCKET");
	log_set_level(LOG_LEVEL_WARNING);
	log_set_fd(fd);
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000000, 33, 2, nop_notify, NULL, &w1), 0);
	assert_int_equal(fastpath_window_add(fp, NULL, 0x2000200, 34, 2, nop_notify, NULL, &w2), 0);
	/* Still on the fast path: the warning is advice, not a refusal. */
	assert_int_equal(fastpath_notify_state(fp), FASTPATH_ON);
	fastpath_free(fp);
	log_set_fd(STDERR_FILENO);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "no service manager to keep the fast path's eventfds"));
	assert_non_null(strstr(buf, "--no-fast-path"));
	/* Once per process, not per queue or window. */
	assert_ptr_equal(strstr(strstr(buf, "no service manager") + 1, "no service manager"), NULL);
	close(fd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_missing_ioctl_falls_back),
		cmocka_unit_test_setup_teardown(test_both_on_kernel_claims_registered_notifies_only,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_handoff_window_loop_stops_watching, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_enotty_plain_path_not_asked_again, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_irqfd_only_kernel_is_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_queue_refused_window_stays_plain, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_off_asks_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_privcmd_device_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ioeventfd_stored_before_assign_dropped_after,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_assign_leaves_store_empty, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reclaim_deassigns_with_stored_fd, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reclaim_nothing_registered_still_dropped, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reclaim_foreign_name_closed_not_deassigned, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_reclaim_without_privcmd_closes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_manager_warns_once, setup, teardown),
		cmocka_unit_test(test_fd_name_trailing_garbage_refused),
		cmocka_unit_test(test_fd_name_missing_fields_refused),
		cmocka_unit_test(test_fd_name_reserved_domid_refused),
		cmocka_unit_test(test_fd_name_zero_or_huge_vcpus_refused),
		cmocka_unit_test(test_fd_name_queue_over_16_bits_refused),
		cmocka_unit_test(test_fd_name_null_page_refused),
		cmocka_unit_test(test_fd_name_other_prefix_not_ours),
	};

	return cmocka_run_group_tests_name("fastpath", tests, NULL, NULL);
}
