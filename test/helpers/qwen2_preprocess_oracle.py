"""Independent oracle for train-bridge/text: ml-fastvlm's data path for Qwen2, re-derived from its behaviour.

Renders with conv_qwen_2 (SeparatorStyle.QWEN_2: system + sep, then role + message + sep per message), masks
targets round by round as preprocess_qwen_2 does (split on sep, pair turns, instruction length = common prefix
of tokenize(round) and tokenize(instruction + sep + assistant role), round length + 2 for the removed sep,
mismatch -> all ignored), applies preprocess_multimodal for `front`, tokenizer_image_token for images, the
collator's truncation, and prepare_inputs_labels_for_multimodal's splice, truncation and right padding.

The tokenizer is the caller's: every string to tokenize is written to stdout as {"encode": text} and its ids
read back from stdin as a JSON list, so this file needs neither transformers nor tokenizers.
Input (first stdin line): {"samples": [{"turns": [...], "system": str|null}], "imageTokenPosition": "data"|"front",
"maxLength": int, "tokensPerImage": int, "padId": int}. Output: {"result": {...}} with input_ids (-1 at image
positions), labels, attention_mask, position_ids, each batch x seqLen.
"""
import json
import sys

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200
IMAGE = "<image>"
SEP = "<|im_end|>\n"
USER_ROLE = "<|im_start|>user\n"
ASSISTANT_ROLE = "<|im_start|>assistant\n"
DEFAULT_SYSTEM = "You are a helpful assistant."


def tokenize(text):
    print(json.dumps({"encode": text}), flush=True)
    return json.loads(sys.stdin.readline())


def tokenize_with_images(text):
    ids = []
    for k, chunk in enumerate(text.split(IMAGE)):
        if k > 0:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(tokenize(chunk))
    return ids


def move_image_to_front(value):
    n = value.count(IMAGE)
    if n == 0:
        return value
    rest = value.replace(IMAGE, "").strip()
    return ((IMAGE + "\n") * n + rest).strip()


def render(system, turns):
    prompt = system + SEP
    for t in turns:
        role = USER_ROLE if t["from"] == "human" else ASSISTANT_ROLE
        prompt += role + t["value"] + SEP
    return prompt


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def preprocess(sample, position, pad_id):
    turns = list(sample["turns"])
    system = "<|im_start|>system\n" + DEFAULT_SYSTEM
    if turns and turns[0]["from"] == "system":
        system = "<|im_start|>system\n" + turns[0]["value"]
        turns = turns[1:]
    if turns and turns[0]["from"] != "human":
        turns = turns[1:]
    if position == "front":
        turns = [{"from": t["from"], "value": move_image_to_front(t["value"])} for t in turns]
    prompt = render(system, turns)
    ids = tokenize_with_images(prompt)
    labels = list(ids)
    total = sum(1 for i in ids if i != pad_id)

    pieces = prompt.split(SEP)
    if pieces[0] == system:
        pieces = [pieces[0] + SEP + pieces[1]] + pieces[2:]
    rounds = []
    for i in range(0, len(pieces), 2):
        rounds.append(pieces[i] + SEP + pieces[i + 1] if i + 1 < len(pieces) else pieces[i])
    at = 0
    split_at = SEP + ASSISTANT_ROLE
    for rnd in rounds:
        if rnd == "":
            break
        parts = rnd.split(split_at)
        if len(parts) != 2:
            break
        instruction = parts[0] + split_at
        round_ids = tokenize_with_images(rnd)
        instruction_len = common_prefix(round_ids, tokenize_with_images(instruction))
        for k in range(at, min(at + instruction_len, len(labels))):
            labels[k] = IGNORE_INDEX
        at += len(round_ids) + 2
    for k in range(at, len(labels)):
        labels[k] = IGNORE_INDEX
    if at != total:
        labels = [IGNORE_INDEX] * len(labels)
    return ids, labels


def main():
    request = json.loads(sys.stdin.readline())
    max_length = request["maxLength"]
    per_image = request["tokensPerImage"]
    pad_id = request["padId"]
    rows = []
    for sample in request["samples"]:
        ids, labels = preprocess(sample, request["imageTokenPosition"], pad_id)
        ids, labels = ids[:max_length], labels[:max_length]  # the collator's cut, before the splice
        out_ids, out_labels = [], []
        for i, l in zip(ids, labels):
            if i == IMAGE_TOKEN_INDEX:
                out_ids += [-1] * per_image
                out_labels += [IGNORE_INDEX] * per_image
            else:
                out_ids.append(i)
                out_labels.append(l)
        rows.append((out_ids[:max_length], out_labels[:max_length]))
    seq_len = max(len(r[0]) for r in rows)
    result = {"input_ids": [], "labels": [], "attention_mask": [], "position_ids": []}
    for ids, labels in rows:
        pad = seq_len - len(ids)
        result["input_ids"].append(ids + [pad_id] * pad)
        result["labels"].append(labels + [IGNORE_INDEX] * pad)
        result["attention_mask"].append([1] * len(ids) + [0] * pad)
        result["position_ids"].append(list(range(len(ids))) + [0] * pad)
    print(json.dumps({"result": result}), flush=True)


if __name__ == "__main__":
    main()
