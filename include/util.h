/* SPDX-License-Identifier: GPL-2.0-only */
/* Small helpers every module may use: container_of, ARRAY_SIZE and an intrusive singly linked list. */
#ifndef VBLKD_UTIL_H
#define VBLKD_UTIL_H

#include <stddef.h>

/* The structure of type @type whose member @member is at @ptr. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Elements of an array (not of a pointer: the compiler warns with -Wsizeof-pointer-div). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Intrusive singly linked lists: a list is a pointer to its first element,
 * each element links to the next through a member named by @field.
 */

/* Put @elem in front of the list at @headp. */
#define slist_push(headp, elem, field)			\
	do {						\
		(elem)->field = *(headp);		\
		*(headp) = (elem);			\
	} while (0)

/* Take @elem out of the list at @headp; nothing happens if it is not on it. */
#define slist_remove(headp, elem, field)					\
	do {									\
		__typeof__(*(headp)) *slist_pp_;				\
										\
		for (slist_pp_ = (headp); *slist_pp_; slist_pp_ = &(*slist_pp_)->field) { \
			if (*slist_pp_ == (elem)) {				\
				*slist_pp_ = (elem)->field;			\
				break;						\
			}							\
		}								\
	} while (0)

#endif
