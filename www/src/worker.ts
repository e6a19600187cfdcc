/// <reference lib="webworker" />
import { createHost } from './host.js';
import type { Request, Response } from './protocol.js';

const scope = self as unknown as DedicatedWorkerGlobalScope;
const handle = createHost((msg: Response) => scope.postMessage(msg));
scope.addEventListener('message', (e: MessageEvent<Request>) => handle(e.data));
