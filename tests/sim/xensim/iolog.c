// SPDX-License-Identifier: GPL-2.0-only
/* What guests see of their requests: completions, the gaps between them, and what a driver is doing. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/*
 * One lock for every guest's counters and the gap log: taken once per
 * request submitted and once per completion seen, cheap next to the ioreq
 * round trips of the request itself.
 */
static pthread_mutex_t iolog_lock = PTHREAD_MUTEX_INITIALIZER;
static struct xsim_gap gap_log[XSIM_GAP_LOG];
static uint64_t gap_count;	/* gaps ever logged; the last XSIM_GAP_LOG are kept */

void iolog_begin(struct sim_domain *dom)
{
	pthread_mutex_lock(&iolog_lock);
	dom->iolog.pending = 0;
	dom->iolog.wait_start_ns = 0;
	pthread_mutex_unlock(&iolog_lock);
}

void iolog_submit(struct sim_domain *dom, uint64_t t_ns)
{
	pthread_mutex_lock(&iolog_lock);
	if (!dom->iolog.pending++)
		dom->iolog.wait_start_ns = t_ns;
	pthread_mutex_unlock(&iolog_lock);
}

void iolog_done(struct sim_domain *dom, uint64_t t_ns)
{
	struct sim_iolog *l = &dom->iolog;
	uint64_t start;

	pthread_mutex_lock(&iolog_lock);
	/*
	 * The guest waited since its latest completion, or since it submitted
	 * after an idle spell (nothing in flight): an idle guest has no gap.
	 */
	start = l->last_done_ns > l->wait_start_ns ? l->last_done_ns : l->wait_start_ns;
	if (l->pending && start && t_ns > start && t_ns - start >= XSIM_GAP_MIN_NS) {
		gap_log[gap_count % XSIM_GAP_LOG] = (struct xsim_gap){
			.domid = dom->domid, .start_ns = start, .end_ns = t_ns };
		gap_count++;
	}
	if (l->pending)
		l->pending--;
	l->last_done_ns = t_ns;
	l->completions++;
	pthread_mutex_unlock(&iolog_lock);
}

void iolog_phase(struct sim_domain *dom, enum xsim_phase phase)
{
	__atomic_store_n(&dom->iolog.phase, (uint32_t)phase, __ATOMIC_SEQ_CST);
}

void iolog_progress(struct sim_domain *dom, uint64_t *ret_completions, uint64_t *ret_last_ns,
		    uint32_t *ret_phase)
{
	pthread_mutex_lock(&iolog_lock);
	*ret_completions = dom->iolog.completions;
	*ret_last_ns = dom->iolog.last_done_ns;
	pthread_mutex_unlock(&iolog_lock);
	*ret_phase = __atomic_load_n(&dom->iolog.phase, __ATOMIC_SEQ_CST);
}

int iolog_gaps(uint64_t since_ns, struct xsim_gap **ret_gaps, uint32_t *ret_n)
{
	struct xsim_gap *out;
	uint64_t first, i;
	uint32_t n = 0;

	out = calloc(XSIM_GAP_LOG, sizeof(*out));
	if (!out)
		return -ENOMEM;
	pthread_mutex_lock(&iolog_lock);
	first = gap_count > XSIM_GAP_LOG ? gap_count - XSIM_GAP_LOG : 0;
	for (i = first; i < gap_count; i++)
		if (gap_log[i % XSIM_GAP_LOG].end_ns >= since_ns)
			out[n++] = gap_log[i % XSIM_GAP_LOG];
	pthread_mutex_unlock(&iolog_lock);
	*ret_gaps = out;
	*ret_n = n;
	return 0;
}
