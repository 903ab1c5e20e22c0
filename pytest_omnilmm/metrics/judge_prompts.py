# ruff: noqa: E501  (upstream's lines, kept as they are)
"""The judge prompts' fixed texts, as VLMEvalKit sends them (data, not logic).

A judge model only gives VLMEvalKit's numbers when it reads the same words, so these strings are kept
character for character, typos included (``Model respone:``), in the same source form (``\\n`` escapes
inside triple-quoted strings) as upstream, read 2026-12 from open-compass/VLMEvalKit (commit a2ce9621;
the copy vendored in OpenBMB/MiniCPM-V ``eval_mm/vlmevalkit`` has the same texts):

* ``vlmeval/dataset/utils/mathvista.py``: ``get_gpt4_ICE`` (the five in-context examples) and the
  ``task_description`` of ``build_mathvista_gpt4_prompt``;
* ``vlmeval/dataset/utils/mmvet.py``: the table of ``build_mmvet_gpt4_prompt``.

How the pieces are put together (and with which request settings) lives in ``mathvista.py`` and
``mmvet.py`` next to this module.
"""

from __future__ import annotations

# --- MathVista: build_mathvista_gpt4_prompt / get_gpt4_ICE --------------------------------------------
MATHVISTA_TASK_DESCRIPTION = """
Please read the following example.
Then extract the answer from the model response and type it at the end of the prompt.\n
"""

MATHVISTA_EXAMPLES: tuple[str, ...] = (
    """
Hint: Please answer the question requiring an integer answer and provide the final value,
e.g., 1, 2, 3, at the end.\n
Question: Which number is missing?\n
Model response: The number missing in the sequence is 14.\n
Extracted answer: 14
""",
    """
Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value,
e.g., 1.2, 1.3, 1.4, at the end.\n
Question: What is the fraction of females facing the camera?\n
Model response: The fraction of females facing the camera is 0.6,
which means that six out of ten females in the group are facing the camera.\n
Extracted answer: 0.6
""",
    """
Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value,
e.g., 1.23, 1.34, 1.45, at the end.\n
Question: How much money does Luca need to buy a sour apple candy and a butter-scotch candy? (Unit: $)\n
Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.\n
Extracted answer: 1.45
""",
    """
Hint: Please answer the question requiring a Python list as an answer and provide the final list,
e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.\n
Question: Between which two years does the line graph saw its maximum peak?\n
Model response: The line graph saw its maximum peak between 2007 and 2008.\n
Extracted answer: [2007, 2008]
""",
    """
Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n
Question: What fraction of the shape is blue?\n
Choices: (A) 3/11 (B) 8/11 (C) 6/11 (D) 3/5\n
Model response: The correct answer is (B) 8/11.\n
Extracted answer: B
""",
)

# After the examples come the row's question, then these two labels around the model's answer (no line
# break between the answer and "Extracted answer:", and "respone" as upstream spells it).
MATHVISTA_RESPONSE_LABEL = "Model respone: "
MATHVISTA_ANSWER_LABEL = "Extracted answer:"

# VLMEvalKit's API wrappers answer this text when a request failed; MathVista_auxeval looks for it.
FAIL_MSG = "Failed to obtain answer via API."

# --- MM-Vet: build_mmvet_gpt4_prompt ------------------------------------------------------------------
MMVET_TABLE = """
Compare the ground truth and prediction from AI models, to give a correctness score for the prediction.
<AND> in the ground truth means it is totally right
only when all elements in the ground truth are present in the prediction,
and <OR> means it is totally right when any one element in the ground truth is present in the prediction.
The correctness score is 0.0 (totally wrong), 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, or 1.0 (totally right).
Just complete the last space of the correctness score.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
What is x in the equation? | -1 <AND> -5 | x = 3 | 0.0
What is x in the equation? | -1 <AND> -5 | x = -1 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -5 or 5 | 0.5
What is x in the equation? | -1 <AND> -5 | x = -1 or x = -5 | 1.0
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries
Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,
while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues
because the names of these countries do not accurately represent their landscapes. |
The meme talks about Iceland and Greenland. It's pointing out that despite their names,
Iceland is not very icy and Greenland isn't very green. | 0.4
Can you explain this meme? | This meme is poking fun at the fact that the names of the countries
Iceland and Greenland are misleading. Despite its name, Iceland is known for its beautiful green landscapes,
while Greenland is mostly covered in ice and snow. The meme is saying that the person has trust issues
because the names of these countries do not accurately represent their landscapes. |
The meme is using humor to point out the misleading nature of Iceland's and Greenland's names.
Iceland, despite its name, has lush green landscapes while Greenland is mostly covered in ice and snow.
The text 'This is why I have trust issues' is a playful way to suggest
that these contradictions can lead to distrust or confusion.
The humor in this meme is derived from the unexpected contrast between the names of the countries
and their actual physical characteristics. | 1.0
"""
