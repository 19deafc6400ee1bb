// SPDX-License-Identifier: GPL-2.0-only
/* Tests of the fast path's decisions: which kernel answers mean "fall back", what the kernel then owns. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "fastpath.h"
#include "log.h"
#include "loop.h"
#include "xpriv.h"

/* A fake kernel at the xpriv seam: what each ioctl answers, and how often it was asked. */
static int ioeventfd_ret, irqfd_ret;
static unsigned int ioeventfd_calls, irqfd_calls, deassigns;

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
		return 0;
	}
	ioeventfd_calls++;
	assert_int_equal(io->size, 4);
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
	ioeventfd_ret = irqfd_ret = 0;
	ioeventfd_calls = irqfd_calls = deassigns = 0;
	L = loop_new();
	assert_non_null(L);
	log_set_level(LOG_LEVEL_ERR);
	return 0;
}

static int teardown(void **state)
{
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
	assert_int_equal(fastpath_window_add(fp, 0x2000000, 33, 2, nop_notify, NULL, &w), 0);
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

static void test_enotty_plain_path_not_asked_again(void **state)
{
	struct fastpath *fp;
	struct fastpath_window *w1, *w2;

	ioeventfd_ret = irqfd_ret = -ENOTTY;
	assert_int_equal(fastpath_new(X, true, 0, L, 3, page, ports, 2, &fp), 0);
	assert_int_equal(fastpath_window_add(fp, 0x2000000, 33, 2, nop_notify, NULL, &w1), 0);
	assert_int_equal(fastpath_window_add(fp, 0x2000200, 34, 2, nop_notify, NULL, &w2), 0);
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
	assert_int_equal(fastpath_window_add(fp, 0x2000000, 33, 1, nop_notify, NULL, &w), 0);
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
	assert_int_equal(fastpath_window_add(fp, 0x2000200, 34, 2, nop_notify, NULL, &w), 0);
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
	assert_int_equal(fastpath_window_add(fp, 0x2000000, 33, 2, nop_notify, NULL, &w), 0);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_classify_missing_ioctl_falls_back),
		cmocka_unit_test_setup_teardown(test_both_on_kernel_claims_registered_notifies_only,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_enotty_plain_path_not_asked_again, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_irqfd_only_kernel_is_partial, setup, teardown),
		cmocka_unit_test_setup_teardown(test_second_queue_refused_window_stays_plain, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_off_asks_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_privcmd_device_unsupported, setup, teardown),
	};

	return cmocka_run_group_tests_name("fastpath", tests, NULL, NULL);
}
