// `mixforge dashboard`: bull-board over the step queues, to watch builds and inspect failed jobs in a browser.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import express from 'express';
import { openRedis } from './redis-client.ts';
import { BuildQueues } from './status.ts';

export interface Dashboard {
  url: string;
  close(): Promise<void>;
}

export async function startDashboard(opts: {
  redis: string;
  port: number;
  host?: string;
  redisTimeoutMs?: number;
}): Promise<Dashboard> {
  const redis = await openRedis(opts.redis, { timeoutMs: opts.redisTimeoutMs });
  const queues = new BuildQueues(redis);
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath('/');
  createBullBoard({
    queues: queues.all().map((q) => new BullMQAdapter(q)),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'mixforge' } },
  });
  const app = express();
  app.use('/', serverAdapter.getRouter());
  const host = opts.host ?? '127.0.0.1';
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(opts.port, host, (err?: Error) => (err ? reject(err) : resolve(s)));
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}/`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await queues.close();
      redis.disconnect();
    },
  };
}
