/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel API differences between the kernels sring builds against, in one
 * place, so that the code below uses today's names. Targets Debian 12's 6.1;
 * each shim says when the API changed.
 */
#ifndef _SRING_COMPAT_H
#define _SRING_COMPAT_H

#include <linux/version.h>
#include <linux/mm.h>
#include <linux/device.h>
#include <linux/eventfd.h>
#include <linux/hrtimer.h>

/* 6.3: vm_flags became read-only; writers use vm_flags_set()/_clear(). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 3, 0)
static inline void vm_flags_set(struct vm_area_struct *vma, unsigned long flags)
{
	vma->vm_flags |= flags;
}

static inline void vm_flags_clear(struct vm_area_struct *vma,
				  unsigned long flags)
{
	vma->vm_flags &= ~flags;
}
#endif

/* 6.4: class_create() lost its owner argument. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 4, 0)
#define sring_class_create(name) class_create(THIS_MODULE, name)
#else
#define sring_class_create(name) class_create(name)
#endif

/* 6.8: eventfd_signal() lost its count argument (always 1 now). */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 8, 0)
#define sring_eventfd_signal(ctx) eventfd_signal(ctx, 1)
#else
#define sring_eventfd_signal(ctx) eventfd_signal(ctx)
#endif

/*
 * Largest page order alloc_pages() accepts. 6.4 made MAX_ORDER inclusive
 * (it was one past the largest order), 6.8 renamed it MAX_PAGE_ORDER.
 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define SRING_MAX_PAGE_ORDER MAX_PAGE_ORDER
#elif LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
#define SRING_MAX_PAGE_ORDER MAX_ORDER
#else
#define SRING_MAX_PAGE_ORDER (MAX_ORDER - 1)
#endif

/* 6.13: hrtimer_setup() replaces hrtimer_init() plus setting .function. */
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 13, 0)
static inline void hrtimer_setup(struct hrtimer *timer,
				 enum hrtimer_restart (*function)(struct hrtimer *),
				 clockid_t clock_id, enum hrtimer_mode mode)
{
	hrtimer_init(timer, clock_id, mode);
	timer->function = function;
}
#endif

#endif /* _SRING_COMPAT_H */
