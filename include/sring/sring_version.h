/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The sring release, shared by the module (modinfo, sysfs "version"), the
 * tools (--version) and packaging (dkms.conf, sring.pc must agree; a test
 * checks). The ABI version is separate: see sring_abi.h.
 */
#ifndef _UAPI_SRING_VERSION_H
#define _UAPI_SRING_VERSION_H

#define SRING_VERSION "0.1.0"

#endif /* _UAPI_SRING_VERSION_H */
