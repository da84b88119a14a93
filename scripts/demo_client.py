"""The demo's application: an unmodified OpenAI SDK user pointed at the local zkcredits
proxy. Nothing in it knows about zkcredits except the base URL; that is the point.

Usage: demo_client.py BASE_URL COUNT MODEL
Prints one JSON line: {"requests": N, "streamed": N, "completion_chars": N}.
"""

import json
import sys

from openai import OpenAI


def main() -> None:
    base_url, count, model = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # The proxy holds the credentials; the SDK insists on a key, so give it a dummy one.
    client = OpenAI(base_url=base_url, api_key="unused-by-zkcredits", max_retries=0)
    models = [m.id for m in client.models.list().data]
    if model not in models:
        raise SystemExit(f"model {model!r} not offered; the gateway lists {models}")
    requests, streamed, chars = 1, 0, 0
    for n in range(count - 1):
        messages = [{"role": "user", "content": f"Question {n}: what is {n} squared?"}]
        if n % 4 == 3:
            stream = client.chat.completions.create(
                model=model, messages=messages, max_tokens=24, stream=True
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    chars += len(chunk.choices[0].delta.content)
            streamed += 1
        else:
            reply = client.chat.completions.create(
                model=model, messages=messages, max_tokens=24
            )
            chars += len(reply.choices[0].message.content or "")
        requests += 1
    print(json.dumps({"requests": requests, "streamed": streamed, "completion_chars": chars}))


if __name__ == "__main__":
    main()
