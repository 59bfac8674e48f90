// skills7: the embedded default task suite. Seven instruction tasks, generated from a seed,
// modelled on the paper's Super-NaturalInstructions mix. They are distinct skills over
// overlapping inputs (the same number list is to be incremented, sorted, reversed or spelled
// out, depending only on the instruction), so one shared set of prompts is pulled in
// conflicting directions; and they come in pairs that share a skill, so a good gate can
// learn to share experts:
//   add_to_list       add k to every number          } element-wise map over a number list
//   numbers_to_words  spell every number out         }
//   sort_numbers      sort ascending                 } reorder a list
//   reverse_list      reverse a number or word list  }
//   essential_words   list the key words of a question  } copy chosen words from the input
//   fact_answer       answer a question from facts      }
//   word_relation     hypernym / meronym / antonym / random (classification)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "instruction_record.h"

namespace mops {

const std::vector<std::string>& skills7_tasks();

// `per_task` records of every task, interleaved task by task, identical for the same seed
// on every machine.
std::vector<InstructionRecord> generate_skills7(size_t per_task, uint64_t seed);

// "seventeen", "forty-two": 0 <= n <= 99.
std::string number_in_words(int n);

}  // namespace mops
