/**
 * A small order service on rollback-pool/express: create an order, reserve
 * its stock, charge it with a payment service that can fail with a 502. The
 * handler has no transaction code: the request scope commits everything when
 * the response is a success and rolls everything back otherwise.
 *
 *   npx tsx examples/orders/server.ts      (MYSQL_URL, PORT to change the defaults)
 *
 * In your own app the imports are 'rollback-pool' and 'rollback-pool/express';
 * here they point at the sources so that the example runs without a build.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { ResultSetHeader, RowDataPacket } from 'mysql2';
import { createPool } from '../../src/index'; // 'rollback-pool'
import { scope } from '../../src/scope/express'; // 'rollback-pool/express'

const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const PORT = Number(process.env.PORT ?? 3000);

/** A card that the fake payment provider cannot process: its gateway answers 502. */
const FAILING_CARD = '4000000000000119';

const pool = createPool({ uri: MYSQL_URL, connectionLimit: 10 });

async function createTables(): Promise<void> {
  await pool.query(`CREATE TABLE IF NOT EXISTS example_products (
    sku VARCHAR(32) PRIMARY KEY, name VARCHAR(100) NOT NULL,
    price_cents INT NOT NULL, stock INT NOT NULL) ENGINE=InnoDB`);
  await pool.query(`CREATE TABLE IF NOT EXISTS example_orders (
    id INT AUTO_INCREMENT PRIMARY KEY, sku VARCHAR(32) NOT NULL, qty INT NOT NULL,
    status VARCHAR(16) NOT NULL, payment_ref VARCHAR(64) NULL,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP) ENGINE=InnoDB`);
  await pool.query(`INSERT IGNORE INTO example_products VALUES
    ('mug', 'Coffee mug', 1200, 10), ('tee', 'T-shirt', 2500, 5)`);
}

/** The payment provider: another HTTP service, which fails with 502 for FAILING_CARD. */
function paymentService(): Server {
  const app = express();
  app.use(express.json());
  app.post('/charges', (req, res) => {
    const { card, amountCents } = req.body as { card?: string; amountCents?: number };
    if (card === FAILING_CARD) {
      res.status(502).json({ error: 'upstream card network unavailable' });
      return;
    }
    res.status(201).json({ ref: `ch_${Date.now().toString(36)}`, amountCents });
  });
  return createServer(app);
}

function orderService(paymentsUrl: string): Server {
  const app = express();
  // One request scope per request: every pool.query/execute/getConnection of the request is in it.
  app.use(
    scope(pool, {
      decide: (req, res) => {
        const decision = res.statusCode < 400 ? 'commit' : 'rollback';
        console.log(`${req.method} ${req.originalUrl} -> ${res.statusCode}: ${decision}`);
        return decision;
      },
    }),
  );
  app.use(express.json());

  app.get('/products', async (_req, res) => {
    const [rows] = await pool.query<RowDataPacket[]>('SELECT sku, name, price_cents, stock FROM example_products ORDER BY sku');
    res.json(rows);
  });

  app.get('/orders', async (_req, res) => {
    const [rows] = await pool.query<RowDataPacket[]>('SELECT * FROM example_orders ORDER BY id DESC LIMIT 20');
    res.json(rows);
  });

  app.post('/orders', async (req, res) => {
    const { sku, qty = 1, card } = req.body as { sku?: string; qty?: number; card?: string };
    if (typeof sku !== 'string' || !Number.isInteger(qty) || qty < 1 || typeof card !== 'string') {
      res.status(400).json({ error: 'expected {"sku": string, "qty": positive integer, "card": string}' });
      return;
    }

    // 1. Create the order.
    const [order] = await pool.execute<ResultSetHeader>("INSERT INTO example_orders (sku, qty, status) VALUES (?, ?, 'pending')", [sku, qty]);

    // 2. Reserve the stock (the row stays locked until the scope ends).
    const [reserved] = await pool.execute<ResultSetHeader>(
      'UPDATE example_products SET stock = stock - ? WHERE sku = ? AND stock >= ?',
      [qty, sku, qty],
    );
    if (reserved.affectedRows === 0) {
      res.status(409).json({ error: 'out of stock', orderId: order.insertId }); // rolled back: no order, no reservation
      return;
    }
    const [[product]] = await pool.execute<RowDataPacket[]>('SELECT price_cents FROM example_products WHERE sku = ?', [sku]);

    // 3. Charge it.
    const charge = await fetch(`${paymentsUrl}/charges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ orderId: order.insertId, card, amountCents: Number(product?.price_cents) * qty }),
    });
    if (!charge.ok) {
      // No try/catch, no ROLLBACK: answering 502 is enough for the order and the reservation to go.
      res.status(502).json({ error: 'payment failed', orderId: order.insertId, upstream: await charge.json() });
      return;
    }
    const { ref } = (await charge.json()) as { ref: string };

    // 4. Mark it paid. The response is sent only once all of this is committed.
    await pool.execute("UPDATE example_orders SET status = 'paid', payment_ref = ? WHERE id = ?", [ref, order.insertId]);
    res.status(201).json({ orderId: order.insertId, status: 'paid', paymentRef: ref });
  });

  // Express 5 sends a thrown error here: a 500, so the scope rolls back.
  app.use((error: unknown, _req: Request, res: Response, _next: NextFunction) => {
    console.error(error);
    res.status(500).json({ error: 'internal error' });
  });
  return createServer(app);
}

async function listen(server: Server, port: number): Promise<string> {
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function main(): Promise<void> {
  await createTables();
  const payments = paymentService();
  const paymentsUrl = await listen(payments, 0);
  const orders = orderService(paymentsUrl);
  const url = await listen(orders, PORT);
  const post = (body: object): string => `curl -s -i -X POST ${url}/orders -H 'content-type: application/json' -d '${JSON.stringify(body)}'`;
  console.log(`Order service on ${url} (payment service on ${paymentsUrl}). Try:

  curl -s ${url}/products
  ${post({ sku: 'mug', qty: 1, card: '4242424242424242' })}
      201: order paid, stock reserved, all committed before the response
  ${post({ sku: 'mug', qty: 1, card: FAILING_CARD })}
      502 from the payment service: the order and the reservation are rolled back
  ${post({ sku: 'tee', qty: 99, card: '4242424242424242' })}
      409 out of stock: the order row is rolled back
  curl -s ${url}/orders

Ctrl-C to stop.`);

  const stop = (): void => {
    orders.closeAllConnections();
    payments.closeAllConnections();
    orders.close();
    payments.close();
    void pool.end();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch(async (error: unknown) => {
  console.error(error);
  await pool.end();
  process.exitCode = 1;
});
