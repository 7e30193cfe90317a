// checkpoint_seal.h (internal; no LibTorch): the checksum that makes a damaged checkpoint
// detectable. LibTorch's archive reader does not check the zip's own CRCs, so a checkpoint with
// flipped bits used to load and train on garbage (NaN weights).
//
// What it is: the checkpoint stays a plain zip file (LibTorch's archive, any zip tool reads
// it); its end-of-central-directory record gets a zip comment of kSealSize bytes,
// "flowfeed-xxh3:" and 16 hex digits, the XXH3-64 of every byte before the comment (the
// comment's length field included). So the checksum covers the whole file but itself, and a
// changed byte anywhere, the comment included, makes the check fail.
//
// Threads: pure functions of their arguments; any thread.
#pragma once

#include <cstddef>
#include <string>

#include "flowfeed/status.h"

namespace flowfeed {

constexpr size_t kSealSize = 30;  // "flowfeed-xxh3:" + 16 hex digits

// Appends the seal to `zip`, an archive as LibTorch writes it (ending with an end-of-central-
// directory record without a comment). Internal error when it does not end that way.
Status SealCheckpoint(std::string* zip);

// Checks `bytes`, the file `path`. Ok with *sealed true when the checksum matches; Ok with
// *sealed false for a zip without any comment (a checkpoint written before seals existed);
// Corrupt naming the file and saying it is damaged otherwise (a wrong checksum, a cut or
// altered end). On success the archive is bytes[0, size - (*sealed ? kSealSize : 0)).
Status CheckSeal(const std::string& bytes, const std::string& path, bool* sealed);

}  // namespace flowfeed
