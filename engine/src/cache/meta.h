// cache/meta.h (internal): the disk store's meta file, flowfeed-cache.meta -- the fingerprint its
// records were written for -- as text: what to write, and whether what is there allows reuse.
//
// The meta file decides between reusing a store and rebuilding it, so it is replaced whole,
// never edited (WriteFileAtomically, by the caller): a crash leaves the old fingerprint or the
// new one. StoredCacheFingerprint() (flowfeed/cache.h) is defined in meta.cc with these.
//
// Thread-safety: pure functions; used on the thread that opens the cache.
#pragma once

#include <string>

#include "flowfeed/cache.h"

namespace flowfeed::cache {

// The meta file for `fingerprint`: {"format":2,"fingerprint":"<hex>","parts":[[name,desc],...]}
// (indented, one trailing newline).
std::string MetaText(const CacheFingerprint& fingerprint);

// Why a store whose meta file reads `text` cannot be reused for `current`: an older (1) or
// unknown format, an unreadable file, or the parts that changed (CacheFingerprint::Explain); ""
// when it can. Whether the data and index files belong to this meta file is their headers' say
// (format.h, checked by CacheImpl::OpenDisk).
std::string MetaMismatch(const std::string& text, const CacheFingerprint& current);

}  // namespace flowfeed::cache
