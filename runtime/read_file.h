// Reading a whole file, with the one error shape every reader uses:
//   "PATH: is a directory, not WHAT[; ADVICE]"
//   "PATH: cannot open WHAT: REASON[; ADVICE]"   (REASON from errno, e.g. "No such file or directory")
//   "PATH: cannot read WHAT: REASON[; ADVICE]"
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace inkstone {

// `what` names the file's role ("the config", "the tokenizer file"); `advice` says what to do.
std::string read_whole_file(const std::filesystem::path& path, std::string_view what,
                            std::string_view advice = {});

}  // namespace inkstone
