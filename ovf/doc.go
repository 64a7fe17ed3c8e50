// Package ovf reads and writes the OVF envelope (DMTF DSP0243): the .ovf
// descriptor of an OVF package or OVA, and its .mf manifest.
//
// The model is deliberately small: one virtual system with its disks,
// networks, CPUs, memory, firmware and network adapters, which is what
// xva converts to and from an XVA. What a document says that the model
// cannot carry is listed in Descriptor.Dropped, one sentence each, so
// that a caller can tell the user instead of losing it silently.
//
// Parse is lenient about shape and strict about safety. Elements and
// attributes are matched by local name, so one reader serves the VMware
// 0.9 namespace, OVF 1.x and 2.x, and VirtualBox's 2.0 files whose
// storage and Ethernet namespaces end in ".xsd". It refuses a DOCTYPE,
// documents over MaxDescriptorSize, deep nesting, too many elements,
// file references that leave the package, and sizes that do not fit.
// It reads UTF-8 and UTF-16 (XenCenter writes UTF-16 with a byte order
// mark) and nothing else.
//
// Marshal writes OVF 1.0 or 2.0 in UTF-8 with the element order of the
// DMTF schema (DSP8023), so that what it writes validates and reads back
// to the same Descriptor (see Marshal for the defaults it fills in).
package ovf
