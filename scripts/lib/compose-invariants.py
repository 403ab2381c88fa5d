#!/usr/bin/env python3
"""The invariants of the saga tests (e2e/tests/saga/chaos_check.rs), checked on a compose mesh
from the services' own records: PostgreSQL read with psql inside the postgres container.

  compose-invariants.py STARTING_CREDIT_CENTS -- docker-compose -p NAME -f compose.yaml ...

Every order terminal or shipped; at most one payment, refund and shipment per order; a shipped
order shipped and paid its total once, any other neither shipped nor charged; a refund returns
its payment; every wallet = opening credit - its captured payments, opened with the starting
credit, and the debits = the shipped orders' totals; per product, the ledger sums to the stock and
the order movements take exactly the units of its shipped orders (so initial stock = stock +
sold); stock is held (reserved) for exactly the shipped orders. Prints one summary line; exits 1
with every violation listed.
"""

import subprocess
import sys
from collections import Counter, defaultdict

TERMINAL_OR_SHIPPED = {"shipped", "payment_failed", "refunded", "cancelled"}


def query(compose, db, sql):
    """Rows of `sql` on database `db`, as lists of strings."""
    out = subprocess.run(
        compose + ["exec", "-T", "postgres", "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1",
                   "-U", "mesh", "-d", db, "-At", "-F", "\t", "-c", sql],
        check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def main():
    credit = int(sys.argv[1])
    compose = sys.argv[sys.argv.index("--") + 1:]
    problems = []

    def check(ok, what):
        if not ok:
            problems.append(what)

    orders = {o: (s, int(t)) for o, s, t in query(
        compose, "store", "SELECT id, status, total_cents FROM orders")}
    lines = query(compose, "store", "SELECT order_id, product_id, quantity FROM order_lines")
    payments = query(compose, "payment",
                     "SELECT order_id, user_id, amount_cents, status FROM payments")
    refunds = query(compose, "payment", "SELECT order_id, amount_cents FROM refunds")
    wallets = query(compose, "payment",
                    "SELECT user_id, balance_cents, opening_credit_cents FROM wallets")
    shipments = query(compose, "warehouse", "SELECT order_id, status FROM shipments")
    products = {p: int(s) for p, s in query(compose, "inventory", "SELECT id, stock FROM products")}
    movements = query(compose, "inventory",
                      "SELECT product_id, delta, order_id IS NOT NULL FROM stock_movements")
    reserved = {r[0] for r in query(
        compose, "inventory", "SELECT order_id FROM reservations WHERE status = 'reserved'")}

    statuses = Counter(s for s, _ in orders.values())
    for order, (status, _) in orders.items():
        check(status in TERMINAL_OR_SHIPPED, f"order {order} stuck in {status}")

    def unique(rows, what):
        by_order = {}
        for row in rows:
            check(row[0] not in by_order, f"two {what}s for order {row[0]}")
            by_order[row[0]] = row
        return by_order

    payment_of = unique(payments, "payment")
    refund_of = unique(refunds, "refund")
    shipment_of = unique(shipments, "shipment")
    captured_total = 0
    for order, (status, total) in orders.items():
        payment = payment_of.get(order)
        captured = payment if payment and payment[3] == "captured" else None
        shipped = order in shipment_of and shipment_of[order][1] == "shipped"
        if status == "shipped":
            check(shipped, f"shipped order {order} never left the warehouse")
            check(captured is not None and int(captured[2]) == total, f"order {order} paid once")
            captured_total += total
        else:
            check(not shipped, f"a {status} order shipped: {order}")
            check(captured is None, f"a {status} order keeps money: {order}")
        if status == "refunded":
            refund = refund_of.get(order)
            check(refund is not None and payment is not None and refund[1] == payment[2],
                  f"order {order} refunded its payment")

    kept = defaultdict(int)
    for _, user, amount, status in payments:
        if status == "captured":
            kept[user] += int(amount)
    debited = 0
    for user, balance, opening in wallets:
        check(int(balance) == int(opening) - kept[user], f"wallet {user} conserved")
        check(int(opening) == credit, f"wallet {user} opened with {opening}, not {credit}")
        debited += int(opening) - int(balance)
    check(debited == captured_total,
          f"wallet debits {debited} = shipped orders' totals {captured_total}")

    sold = defaultdict(int)
    for order, product, quantity in lines:
        if orders.get(order, ("",))[0] == "shipped":
            sold[product] += int(quantity)
    ledger, by_orders = defaultdict(int), defaultdict(int)
    for product, delta, for_order in movements:
        ledger[product] += int(delta)
        if for_order == "t":
            by_orders[product] += int(delta)
    for product, stock in products.items():
        check(ledger[product] == stock, f"the ledger of {product} sums to its stock")
        check(-by_orders[product] == sold[product],
              f"stock of {product}: orders took {-by_orders[product]}, shipped {sold[product]}")
    shipped_orders = {o for o, (s, _) in orders.items() if s == "shipped"}
    check(reserved == shipped_orders, "stock is held for exactly the shipped orders")

    print(f"{len(orders)} orders {dict(sorted(statuses.items()))}; captured {captured_total} "
          f"cents = wallet debits; {len(refunds)} refunds; {len(shipments)} shipments; "
          f"stock and ledgers of {len(products)} products conserved"
          if not problems else f"{len(problems)} invariant violations")
    for problem in problems[:50]:
        print(f"  VIOLATION: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
