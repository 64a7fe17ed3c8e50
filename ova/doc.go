// Package ova reads and writes the metadata document of an XVA archive,
// ova.xml, in both generations: the legacy <appliance version="0.1"> document
// and the XML-RPC document that xapi exports. Both map to one VM model.
//
// A format package: it imports nothing of the module.
package ova
